"""The local index of battery-bench runs started on phones and not collected yet.

One JSON file per run in `runs_dir()` ($XDG_STATE_HOME or ~/.local/state, then
edgekit/runs/): `<run_id>.json` with the device, the transport and the commands that
collect or resume it. A file per run, written atomically, so runs started at once on
several phones never race on one index file. The CLI adds an entry the moment a run starts
on a phone and removes it once the run is collected (`edgekit runs` lists them); this
module never decides on its own to write the user's folders.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
from pathlib import Path

from edgekit._files import atomic_write_text
from edgekit._typed import to_json

_RUN_ID = re.compile(r"[0-9A-Za-z._-]+")


def runs_dir() -> Path:
    """edgekit's folder of run entries ($XDG_STATE_HOME or ~/.local/state, then edgekit/runs). Not created here."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "edgekit" / "runs"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunEntry:
    """A run started on a phone: where it is and how to get it back."""

    run_id: str
    device: str
    transport: str
    started: str
    """ISO 8601, UTC, when the host started it."""
    detached: bool
    artifact: str | None = None

    def __post_init__(self) -> None:
        if not _RUN_ID.fullmatch(self.run_id):
            raise ValueError(f"{self.run_id!r} is not a run id")

    def command(self, flag: str) -> str:
        """The battery-bench command line that `flag` (--collect or --resume) this run."""
        argv = ["edgekit", "battery-bench", "--device", self.device]
        if self.transport != "adb":
            argv += ["--transport", self.transport]
        return shlex.join([*argv, flag, self.run_id])

    @property
    def collect_command(self) -> str:
        """`edgekit battery-bench --device D --collect RUN_ID`."""
        return self.command("--collect")

    @property
    def resume_command(self) -> str:
        """`edgekit battery-bench --device D --resume RUN_ID`."""
        return self.command("--resume")

    def json_view(self) -> RunListing:
        """The entry as `edgekit runs --json` prints it (through _typed.to_data): with both commands."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return RunListing(**fields, collect=self.collect_command, resume=self.resume_command)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunListing(RunEntry):
    """`edgekit runs --json`'s record of a run: the entry and the commands that collect or resume it."""

    collect: str
    resume: str


def add(entry: RunEntry, folder: Path | None = None) -> Path:
    """Record `entry` (atomically; an entry of the same run id is replaced); returns its file."""
    folder = folder or runs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{entry.run_id}.json"
    atomic_write_text(path, to_json(entry))
    return path


def remove(run_id: str, folder: Path | None = None) -> bool:
    """Forget run `run_id` (it was collected); False if it was not in the index."""
    if not _RUN_ID.fullmatch(run_id):
        return False
    path = (folder or runs_dir()) / f"{run_id}.json"
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def entries(folder: Path | None = None) -> list[RunEntry]:
    """Every recorded run, oldest first; a file that is not an entry is passed over."""
    folder = folder or runs_dir()
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            raw = json.loads(path.read_text())
            fields = {f.name for f in dataclasses.fields(RunEntry)}
            out.append(RunEntry(**{k: v for k, v in raw.items() if k in fields}))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(out, key=lambda e: (e.started, e.run_id))
