"""Where edgekit's data folders (`converters/`, `android_harness/`) are.

In a wheel they are installed inside the package as `edgekit/_data/<name>`; in a source
checkout (editable install, tests) they are the top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder of data set `name` ("converters" or "android_harness")."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"edgekit data folder {name!r} is missing from this installation; reinstall edgekit")
