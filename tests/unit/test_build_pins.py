"""Every install builds the package with pinned versions, taken from constraints.txt.

pip builds the package (setup.py compiles the core with mypyc) in an isolated environment of its
own, installed from `[build-system] requires`. `pip install -c` does not reach that install, so
every install passes constraints.txt through the environment, which pip's build subprocess
inherits: `PIP_CONSTRAINT` (up to pip 26.1) and `PIP_BUILD_CONSTRAINT` (from pip 25.3 on).
These tests read the files only: no network, no build.
"""

import re
import tomllib
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
#: What every `pip install` of the project carries (relative paths: it runs in the root).
CONSTRAINED = "PIP_CONSTRAINT=constraints.txt PIP_BUILD_CONSTRAINT=constraints.txt"


def pins() -> dict[str, str]:
    """constraints.txt's exact versions, by normalized name."""
    pinned: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.partition("#")[0].strip()
        if line:
            name, exact, version = line.partition("==")
            assert exact, f"constraints.txt: {line!r} is not an exact version"
            pinned[canonicalize_name(name)] = version
    return pinned


def build_requirements() -> list[Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [Requirement(text) for text in pyproject["build-system"]["requires"]]


def test_every_build_requirement_is_pinned_to_a_version_pyproject_allows() -> None:
    pinned = pins()
    names = [canonicalize_name(requirement.name) for requirement in build_requirements()]
    assert "setuptools" in names, "the build backend is a build requirement"
    for requirement in build_requirements():
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement} ([build-system]) is not in constraints.txt"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"constraints.txt's {requirement.name}=={version} is not {requirement} ([build-system])"
        )


def test_what_the_build_requirements_depend_on_is_pinned_too() -> None:
    """mypy's own dependencies (mypy_extensions, typing_extensions, pathspec, librt, ...), as the
    installed distributions declare them for this interpreter: the test install put the build's
    mypy and stubs in this venv too. setuptools is left out: this venv's copy is its own, not the
    build's, and setuptools declares optional dependencies only."""
    pinned = pins()
    seen: set[str] = set()
    todo = [r for r in build_requirements() if canonicalize_name(r.name) != "setuptools"]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        assert name in pinned, f"{requirement.name} (the build installs it): not in constraints.txt"
        for text in requires(requirement.name) or []:
            dependency = Requirement(text)
            if dependency.marker is None or dependency.marker.evaluate({"extra": ""}):
                todo.append(dependency)
    assert {"mypy", "mypy-extensions", "typing-extensions"} <= seen


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv && ")]


def test_every_install_passes_the_constraints_to_the_build() -> None:
    serve, test = readme_commands()
    assert serve == (
        f"python3 -m venv .venv && {CONSTRAINED} .venv/bin/pip install -q -e ."
        " && .venv/bin/loan-auction serve"
    )
    assert test == (
        f"python3 -m venv .venv && {CONSTRAINED} .venv/bin/pip install -q -e '.[test]'"
        " && .venv/bin/python -m pytest"
    )
    assert test in (ROOT / ".ci" / "run").read_text().splitlines(), ".ci/run runs the README's"
    docker = re.findall(r"^RUN (.*pip install.*)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert docker == [f"{CONSTRAINED} /venv/bin/pip install --no-cache-dir ."]
    assert "WORKDIR /src\n" in (ROOT / "Dockerfile").read_text()
