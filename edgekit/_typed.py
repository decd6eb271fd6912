"""Typed records <-> plain JSON data, validated with msgspec (results, manifests, run meta, workloads).

The one way edgekit turns a record into JSON: `to_data` (plain data, e.g. for --json) and
`to_json` (the text of every JSON file edgekit writes); the one way back: `from_data`.

Records are frozen dataclasses; msgspec checks every nested field against its annotation
when a file is read (ints for floats are accepted; unknown keys are ignored, so a newer
edgekit's extra keys do not stop an older one). A field that a file may lack has a
default; `msgspec.UNSET` marks a key that is left out of the file when it does not apply
(e.g. a local run's runner has no `protocol`).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from edgekit.errors import InputError

T = TypeVar("T")

_MSGSPEC = threading.Lock()
"""msgspec 0.22 builds each dataclass's type info on first use; two threads doing that for
the same class at once crashed the process (SIGSEGV inside msgspec.convert, seen in a
parallel battery-bench: tests/test_lab_e2e.py, both threads in Manifest.from_json). One
conversion at a time: a result or manifest takes microseconds."""


def from_data(data: Any, cls: type[T], what: str, *, path: Path | None = None) -> T:
    """`data` (parsed JSON) as a `cls`; InputError (its `path`: the file read) naming the first
    bad field, e.g. "battery-bench result: Expected `int`, got `str` - at `$.turns[0].turn_index`"."""
    try:
        with _MSGSPEC:
            return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise InputError(f"{what}: {exc}", path=path) from exc


def to_data(record: Any) -> Any:
    """A record as plain JSON data (dicts, lists, str, numbers, None); UNSET fields left out,
    enums as their values, tuples as lists."""
    with _MSGSPEC:
        return msgspec.to_builtins(record)


def to_json(record: Any) -> str:
    """A record (or plain JSON data) as edgekit's JSON files hold it: indented, keys sorted, a final newline."""
    return json.dumps(to_data(record), indent=2, sort_keys=True) + "\n"
