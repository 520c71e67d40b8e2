"""Builds the matching core (`matching/`) into C extensions with mypyc; pyproject.toml holds the
rest of the package. The source stays plain, typed Python: mypyc compiles what mypy checks, and
the core runs ~1.8× faster a bid (BENCHMARKS.md). An editable install puts the built modules
beside the sources, so after a change to `matching/` run the install again (the tests refuse a
build older than its source: tests/conftest.py)."""

from pathlib import Path

from mypyc.build import mypycify
from setuptools import setup

setup(ext_modules=mypycify(sorted(str(path) for path in Path("matching").glob("*.py"))))
