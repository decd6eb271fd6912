"""The one atomic write: a file is replaced whole or not at all; and the check, before a
long job, that its output can be written at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from edgekit.errors import InputError


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; when the block ends without an
    error it replaces `path` in one rename (a reader sees the old file or the new one,
    never half of one); on an error (Ctrl-C included) it is removed and `path` is untouched."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (see `atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def check_writable(path: Path, *, flag: str = "-o", make_folders: bool = False) -> None:
    """Raise InputError (one line, naming `flag`) unless a file can be written at `path`.

    Asked before a long job, so that a bad `-o` is refused before the work, not after it.
    The folder must exist, or with `make_folders` its nearest existing ancestor must take
    new folders. Probed by creating and removing a file there, as the atomic write will:
    `os.access` says yes to root in a read-only mount."""
    if path.is_dir():
        raise InputError(f"{flag} {path} is a folder: give a file name", path=path)
    folder = path.parent
    base = folder
    while not base.exists() and base != base.parent:
        base = base.parent
    if base != folder and not make_folders:
        raise InputError(
            f"output folder {folder} does not exist: create it first or choose another {flag}", path=folder
        )
    if not base.is_dir():
        raise InputError(f"{flag} {path}: {base} is not a folder: choose another {flag}", path=base)
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=base)
    except OSError as exc:
        raise InputError(
            f"cannot write in output folder {base} ({exc.strerror or exc}): choose another {flag}", path=base
        ) from exc
    os.close(fd)
    os.unlink(probe)


STALE_AFTER_S = 24 * 3600.0
"""A temp folder of ours untouched this long is left from a killed process (a live one writes)."""


def remove_stale_temp(folder: Path, prefix: str, *, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove the folders named `prefix*` in `folder` that a killed process of ours left:
    owned by this user, not a symlink, and nothing in them modified for `max_age_s`.
    A folder still in use (anything in it newer) or someone else's is never touched.
    Returns what was removed."""
    cutoff = time.time() - max_age_s
    removed = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []
    for path in candidates:
        try:
            st = path.lstat()
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or not _untouched_since(path, cutoff):
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


def _untouched_since(path: Path, cutoff: float) -> bool:
    """True when `path` and everything under it were last modified before `cutoff`."""
    if path.lstat().st_mtime >= cutoff:
        return False
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            if os.lstat(os.path.join(root, name)).st_mtime >= cutoff:
                return False
    return True
