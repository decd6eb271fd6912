"""Where edgekit's data folders (`converters/`, `android_harness/`) are.

In a wheel they are installed inside the package as `edgekit/_data/<name>`; in a source
checkout (editable install, tests) they are the top-level folders of the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def user_cache_dir() -> Path:
    """edgekit's folder in the user cache ($XDG_CACHE_HOME or ~/.cache, then edgekit/): logs,
    the cached runner, the local device. Not created here."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgekit"


def data_dir(name: str) -> Path:
    """The folder of data set `name` ("converters" or "android_harness")."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"edgekit data folder {name!r} is missing from this installation; reinstall edgekit")
