"""Detached battery-bench runs on several devices at once: started, then collected again.

    start_detached(serials, transport, artifact, config)   {serial: run id, or the error that stopped it}
    collect_runs(entries, campaign)                        [(entry, DeviceOutcome or RunStillRunning)]

A device that fails is its own entry and never stops the others. Which runs wait to be
collected is the caller's to keep (`bench.runs`, the CLI's index): these only report.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from pathlib import Path

from edgekit.bench import session
from edgekit.bench.campaign import Campaign, DeviceOutcome, collect_outcome
from edgekit.bench.config import BenchConfig
from edgekit.bench.runs import RunEntry
from edgekit.device import Transport, open_device
from edgekit.errors import EdgekitError, RunStillRunning

MAX_WORKERS = 8
"""Devices handled at the same time: each takes a thread that mostly waits on its adb link."""


def start_detached(
    serials: list[str],
    transport: Transport,
    artifact: Path,
    config: BenchConfig,
    *,
    started: Callable[[str, str], None] | None = None,
) -> dict[str, str | EdgekitError]:
    """Deploy `artifact` and start a detached run of it on every device at once; each
    device's run id, or the error that stopped it there, in the order of `serials`.
    `started(serial, run_id)` hears each run the moment it has started (from its thread)."""

    def start(serial: str) -> str:
        with open_device(serial, transport) as device:
            run_id = session.start_run(device, artifact, config, detach=True)
            if started is not None:
                started(serial, run_id)
            return run_id

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(serials))) as pool:
        futures = [(serial, pool.submit(start, serial)) for serial in serials]
    outcomes: dict[str, str | EdgekitError] = {}
    for serial, future in futures:
        try:
            outcomes[serial] = future.result()
        except EdgekitError as exc:
            outcomes[serial] = exc
    return outcomes


def collect_runs(entries: list[RunEntry], campaign: Campaign) -> list[tuple[RunEntry, DeviceOutcome | RunStillRunning]]:
    """Collect every run of `entries` at once, each written as `campaign` says (several:
    each output gets `-<serial>`): per entry its outcome, or RunStillRunning when it is not
    done yet (collect it again later). An outcome with `error` set was not collected."""
    several = len(entries) > 1

    def one(entry: RunEntry) -> DeviceOutcome:
        with open_device(entry.device, Transport(entry.transport)) as device:
            return collect_outcome(device, entry.run_id, campaign, several=several)

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(entries))) as pool:
        futures = [(entry, pool.submit(one, entry)) for entry in entries]
    collected: list[tuple[RunEntry, DeviceOutcome | RunStillRunning]] = []
    for entry, future in futures:
        try:
            collected.append((entry, future.result()))
        except RunStillRunning as live:
            collected.append((entry, live))
        except EdgekitError as exc:
            collected.append((entry, DeviceOutcome(serial=entry.device, error=exc)))
    return collected
