"""The tests refuse a matching core that is not the compiled build of its current source
(tests/compiled_core.py, run by tests/conftest.py before any test): here on a folder laid out
as an editable install leaves it."""

import json
import os
from pathlib import Path

from tests.compiled_core import SUFFIX, digests, record_path, stale

OTHER_SUFFIX = ".cpython-399-x86_64-linux-gnu.so"  # another interpreter's build in the same tree


def core_with(tmp_path: Path, **sources: str) -> Path:
    core = tmp_path / "matching"
    core.mkdir()
    for stem, text in {"__init__": "", **sources}.items():
        (core / f"{stem}.py").write_text(text)
    return core


def build(core: Path, suffix: str = SUFFIX) -> None:
    """What the install leaves: a module beside each source, the record of what it compiled."""
    for source in core.glob("*.py"):
        (core / (source.stem + suffix)).write_bytes(b"\x7fELF")
    record = record_path(core.parent, suffix)
    record.parent.mkdir(exist_ok=True)
    record.write_text(json.dumps(digests(core)))


def older(path: Path, than: Path) -> None:
    """Give `path` a modification time before `than`'s, as a copy that keeps times does."""
    earlier = than.stat().st_mtime - 60
    os.utime(path, (earlier, earlier))


def test_a_build_of_the_current_sources_passes(tmp_path: Path) -> None:
    core = core_with(tmp_path, engine="A = 1\n")
    build(core)
    assert stale(core) is None


def test_a_source_without_its_module_is_refused(tmp_path: Path) -> None:
    core = core_with(tmp_path, engine="A = 1\n")
    assert stale(core) == f"{core / '__init__.py'} is not compiled"
    build(core)
    (core / "book.py").write_text("B = 1\n")
    assert stale(core) == f"{core / 'book.py'} is not compiled"


def test_a_build_newer_than_its_source_but_of_other_text_is_refused(tmp_path: Path) -> None:
    """An edit saved while the install compiled the old text, or a file copied back with its
    old time: the build is newer than the source, and not of it."""
    core = core_with(tmp_path, engine="A = 1\n")
    build(core)
    engine = core / "engine.py"
    engine.write_text("A = 2\n")
    older(engine, than=core / f"engine{SUFFIX}")
    assert stale(core) == f"{engine} is not what its build was compiled from"


def test_only_this_interpreters_build_counts(tmp_path: Path) -> None:
    """Another Python's build, newer and of the current text, says nothing of the modules this
    one imports."""
    core = core_with(tmp_path, engine="A = 1\n")
    build(core)
    (core / "engine.py").write_text("A = 2\n")
    build(core, OTHER_SUFFIX)
    assert stale(core, OTHER_SUFFIX) is None
    assert stale(core) == f"{core / 'engine.py'} is not what its build was compiled from"


def test_a_module_whose_source_is_gone_is_refused(tmp_path: Path) -> None:
    """Its build still imports (a test of it would pass against code that no longer exists)."""
    core = core_with(tmp_path, engine="A = 1\n", old="C = 1\n")
    build(core)
    (core / "old.py").unlink()
    assert stale(core) == f"{core / f'old{SUFFIX}'} is built from a source that is gone"
