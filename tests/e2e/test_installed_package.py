"""`pip install .` (not editable) ships everything the service needs, migrations included, and
the matching core compiled (setup.py)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import database
from tests.e2e.conftest import ROOT


def docker_build_context() -> list[str]:
    """What the Dockerfile's build stage copies in before it runs `pip install .`."""
    stages = (ROOT / "Dockerfile").read_text().split("\nFROM ")
    build_stage = next(stage for stage in stages if " AS build\n" in stage)
    sources: list[str] = []
    for line in build_stage.splitlines():
        if line.startswith("COPY "):
            sources += line.split()[1:-1]
    return sources


def test_the_image_is_built_from_the_code_and_schema_only() -> None:
    assert sorted(docker_build_context()) == [
        "README.md", "app", "constraints.txt", "matching", "migrations", "pyproject.toml",
        "setup.py",
    ]
    assert "bench" not in (ROOT / "Dockerfile").read_text()


@pytest.mark.slow
def test_a_non_editable_install_migrates_a_database_from_any_folder(
    empty_database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    for name in docker_build_context():  # exactly what the Docker build sees
        path = ROOT / name
        if path.is_dir():
            # .dockerignore keeps an editable install's built modules out of the image's build
            shutil.copytree(
                path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.so")
            )
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=120)
    constraints = str(source / "constraints.txt")  # the build's environment too, as the image's
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(source)],
        env={**env, "PIP_CONSTRAINT": constraints, "PIP_BUILD_CONSTRAINT": constraints},
        capture_output=True, text=True, timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    migrated = subprocess.run(
        [str(venv / "bin" / "loan-auction"), "migrate"],
        cwd=elsewhere, capture_output=True, text=True, timeout=120,
        env={**env, "DATABASE_URL": empty_database_url},
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    versions = [f.name.removesuffix(".sql") for f in database.migration_files()]
    assert migrated.stdout.strip() == "applied: " + ", ".join(versions)
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import app, migrations, matching.engine;"
         " print(app.__file__); print(migrations.__file__); print(matching.engine.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True, timeout=60,
    )
    assert all(line.startswith(str(venv)) for line in where.stdout.split()), where.stdout
    assert where.stdout.split()[-1].endswith(".so"), "the installed core is compiled"
