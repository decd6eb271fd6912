"""Conversation workloads: JSONL, a header line then one conversation per line.

    {"workload": "chat-25", "version": 1, "max_output_tokens": 64}
    {"id": "extract-cities", "turns": ["List the cities in ...", "Which is in South America?"]}

`chat-25` ships with edgekit (`android_harness/workloads/`); `--workload FILE` takes a
user's own file in the same format. Every result records the file's sha256. Each line is
checked against its record with msgspec (edgekit._typed): a missing or ill-typed key is one
InputError naming the file, the line and the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from edgekit._data import data_dir
from edgekit._typed import from_data
from edgekit.errors import InputError

DEFAULT_WORKLOAD = "chat-25"
MAX_TURN_CHARS = 4000


@dataclasses.dataclass(frozen=True, kw_only=True)
class Conversation:
    """One conversation: an id and its user turns, in order."""

    id: str
    turns: tuple[str, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Header:
    """A workload file's first line."""

    workload: str
    version: int = 1
    max_output_tokens: int = 64


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Line:
    """A workload file's conversation line, as written (turns not yet joined into one line each)."""

    id: str
    turns: tuple[str, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Workload:
    """A validated workload file."""

    name: str
    version: int
    max_output_tokens: int
    conversations: tuple[Conversation, ...]
    sha256: str
    path: Path

    @property
    def turns(self) -> int:
        """Total user turns."""
        return sum(len(c.turns) for c in self.conversations)


def builtin_workload_path(name: str = DEFAULT_WORKLOAD) -> Path:
    """The path of a workload that ships with edgekit."""
    return data_dir("android_harness") / "workloads" / f"{name}.jsonl"


def load_workload(path: Path | str | None = None) -> Workload:
    """Read and validate a workload file (default: chat-25); InputError names the bad line."""
    path = Path(path) if path is not None else builtin_workload_path()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"workload {path}: cannot read it ({exc.strerror})", path=path) from exc
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        line_no = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"workload {path} is not UTF-8: byte {exc.start} (line {line_no}) is 0x{raw[exc.start]:02x}; "
            "save the file as UTF-8",
            path=path,
        ) from exc
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise InputError(f"workload {path} is empty: it needs a header line and at least one conversation")

    def json_line(n: int, line: str) -> object:
        try:
            return json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"workload {path}, line {n}: not valid JSON ({exc.msg})", path=path) from exc

    n0, first = numbered[0]
    value = json_line(n0, first)
    if not isinstance(value, dict) or "workload" not in value:
        raise InputError(
            f'workload {path}, line {n0}: the first line must be the header {{"workload": NAME, "version": N, '
            f'"max_output_tokens": N}}',
            path=path,
        )
    header = from_data(value, _Header, f"workload {path}, line {n0}", path=path)
    name, version, max_out = header.workload, header.version, header.max_output_tokens
    if not name:
        raise InputError(f"workload {path}, line {n0}: 'workload' must be a non-empty name", path=path)
    if max_out < 1:
        raise InputError(f"workload {path}, line {n0}: 'version' and 'max_output_tokens' must be positive integers")
    conversations = []
    seen: set[str] = set()
    for n, line in numbered[1:]:
        item = from_data(json_line(n, line), _Line, f"workload {path}, line {n}", path=path)
        cid, turns = item.id, item.turns
        if not cid:
            raise InputError(f"workload {path}, line {n}: 'id' must be a non-empty string", path=path)
        if cid in seen:
            raise InputError(f"workload {path}, line {n}: id {cid!r} is used twice", path=path)
        seen.add(cid)
        if not turns or not all(t.strip() for t in turns):
            raise InputError(f"workload {path}, line {n}: 'turns' must be a list of non-empty strings", path=path)
        if any(len(t) > MAX_TURN_CHARS for t in turns):
            raise InputError(f"workload {path}, line {n}: a turn is longer than {MAX_TURN_CHARS} characters")
        # One turn is one line on the runner's stdin: newlines inside a turn become spaces.
        conversations.append(Conversation(id=cid, turns=tuple(" ".join(t.split()) for t in turns)))
    if not conversations:
        raise InputError(f'workload {path} has no conversations: add lines of {{"id": ..., "turns": [...]}}')
    return Workload(
        name=name,
        version=version,
        max_output_tokens=max_out,
        conversations=tuple(conversations),
        sha256=hashlib.sha256(raw).hexdigest(),
        path=path,
    )
