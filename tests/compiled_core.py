"""Whether the matching core Python imports is the compiled build of its current source.

An editable install builds each module beside its source (setup.py) and Python imports the
built module over the `.py`, so a build that is not of the current source runs old code. The
build records a hash of each source it compiled (setup.py); a modification time cannot tell a
build of other sources made later (an edit saved during the build, a file copied back with its
old time) from a build of these.
"""

import hashlib
import json
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

#: What this interpreter imports a built module from, e.g. `.cpython-311-x86_64-linux-gnu.so`.
SUFFIX = EXTENSION_SUFFIXES[0]


def record_path(project: Path, suffix: str = SUFFIX) -> Path:
    """Where setup.py records what it built for an interpreter (in `project`'s build folder)."""
    return project / "build" / f"matching{suffix}.json"


def digests(core: Path) -> dict[str, str]:
    """Each source of the core by file name, and its SHA-256."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(core.glob("*.py"))
    }


def stale(core: Path, suffix: str = SUFFIX) -> str | None:
    """What is wrong with the build of the core in `core` (the `matching` folder) for the
    interpreter of `suffix`; None when each source is built from its current text."""
    sources = digests(core)
    missing = [name for name in sources if not (core / (name[:-3] + suffix)).exists()]
    if missing:
        return f"{core / missing[0]} is not compiled"
    left = sorted(
        path.name for path in core.glob(f"*{suffix}") if path.name[: -len(suffix)] + ".py"
        not in sources
    )
    if left:
        return f"{core / left[0]} is built from a source that is gone"
    record = record_path(core.parent, suffix)
    built = json.loads(record.read_text()) if record.exists() else {}
    changed = [name for name, digest in sources.items() if built.get(name) != digest]
    if changed:
        return f"{core / changed[0]} is not what its build was compiled from"
    return None
