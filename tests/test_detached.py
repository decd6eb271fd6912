"""bench.detached: runs started, then collected, on several devices at once; a device that
fails is its own entry and never stops the others (the transport and the session faked)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit.bench import detached
from edgekit.bench.campaign import Campaign, DeviceOutcome
from edgekit.bench.config import BenchConfig
from edgekit.bench.runs import RunEntry
from edgekit.device import Transport
from edgekit.errors import DeviceError, RunStillRunning
from edgekit.testing.fake import FakeDevice


@contextlib.contextmanager
def _fake_device(serial: str, _transport: Transport = Transport.ADB) -> Iterator[FakeDevice]:
    yield FakeDevice(serial=serial)


def test_every_device_starts_but_the_one_that_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def start_run(device: FakeDevice, _artifact: Path, _config: BenchConfig, *, detach: bool) -> str:
        assert detach
        if device.serial == "B":
            raise DeviceError("offline", serial="B")
        return f"run-{device.serial}"

    monkeypatch.setattr(detached, "open_device", _fake_device)
    monkeypatch.setattr(detached.session, "start_run", start_run)
    heard: list[tuple[str, str]] = []
    outcomes = detached.start_detached(
        ["A", "B", "C"], Transport.ADB, tmp_path / "m.litertlm", BenchConfig(), started=lambda *x: heard.append(x)
    )
    assert list(outcomes) == ["A", "B", "C"]
    assert outcomes["A"] == "run-A" and outcomes["C"] == "run-C"
    assert isinstance(outcomes["B"], DeviceError) and "offline" in str(outcomes["B"])
    assert sorted(heard) == [("A", "run-A"), ("C", "run-C")]


def test_each_run_is_collected_still_running_or_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def collect_outcome(device: FakeDevice, run_id: str, _campaign: Campaign, *, several: bool) -> DeviceOutcome:
        assert several
        if run_id == "r2":
            raise RunStillRunning("still running", serial=device.serial, run_id=run_id, done=1, total=3)
        if run_id == "r3":
            raise DeviceError("offline", serial=device.serial)
        return DeviceOutcome(serial=device.serial)

    monkeypatch.setattr(detached, "open_device", _fake_device)
    monkeypatch.setattr(detached, "collect_outcome", collect_outcome)
    entries = [RunEntry(run_id=f"r{i}", device=f"D{i}", transport="adb", started="", detached=True) for i in (1, 2, 3)]
    collected = detached.collect_runs(entries, Campaign(artifacts=(), config=BenchConfig()))
    assert [entry.run_id for entry, _ in collected] == ["r1", "r2", "r3"]
    first, second, third = (outcome for _, outcome in collected)
    assert isinstance(first, DeviceOutcome) and first.error is None
    assert isinstance(second, RunStillRunning) and (second.done, second.total) == (1, 3)
    assert isinstance(third, DeviceOutcome) and third.serial == "D3" and isinstance(third.error, DeviceError)
