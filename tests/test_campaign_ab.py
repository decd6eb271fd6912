"""A campaign of several artifacts on one phone (issue 16 #3), at the seam where each run
starts: the interleaved order, a cool-down before every run but the first, and which
errors end one run and which end the phone's runs. End to end: tests/test_lab_e2e.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from edgekit.bench import campaign as campaign_lib
from edgekit.bench.campaign import Campaign, run_repeats
from edgekit.bench.config import BenchConfig
from edgekit.errors import DeviceError, EdgekitError, InputError, RunLost
from edgekit.testing.fake import FakeDevice

A, X, B = Path("a.litertlm"), Path("x.litertlm"), Path("b.litertlm")


def _events(monkeypatch: pytest.MonkeyPatch, fail: dict[str, EdgekitError]) -> list[tuple[Any, ...]]:
    """Record each run and cool-down instead of doing it; a run of an artifact in `fail` raises that error."""
    events: list[tuple[Any, ...]] = []

    def run(_device: object, artifact: Path, _config: object, *, index: int, **_kw: object) -> str:
        events.append(("run", artifact.name, index))
        if artifact.name in fail:
            raise fail[artifact.name]
        return f"result of {artifact.name} #{index}"

    def cool(_device: object, start_c: float | None) -> None:
        events.append(("cool", start_c))

    monkeypatch.setattr(campaign_lib, "run_attached", run)
    monkeypatch.setattr(campaign_lib, "cool_down", cool)
    return events


def _phone(celsius: float) -> FakeDevice:
    phone = FakeDevice()
    phone.battery_sample = dataclasses.replace(phone.battery_sample, temperature_c=celsius)
    return phone


def test_artifacts_interleave_with_a_cool_down_to_the_start_temperature_before_every_run_but_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = InputError("x is broken")
    events = _events(monkeypatch, {"x.litertlm": broken})
    runs = run_repeats(_phone(31.5), Campaign(artifacts=(A, X, B), config=BenchConfig(), repeat=2))
    names = ["a.litertlm", "x.litertlm", "b.litertlm"] * 2
    expected: list[tuple[Any, ...]] = []
    for i, name in enumerate(names):
        expected += ([("cool", 31.5)] if i else []) + [("run", name, i)]
    assert events == expected
    assert runs == [
        ["result of a.litertlm #0", "result of a.litertlm #3"],
        [broken, broken],  # each of x's runs failed, and neither stopped a or b
        ["result of b.litertlm #2", "result of b.litertlm #5"],
    ]


def test_no_cooldown_runs_back_to_back(monkeypatch: pytest.MonkeyPatch) -> None:
    events = _events(monkeypatch, {})
    run_repeats(_phone(30.0), Campaign(artifacts=(A, B), config=BenchConfig(), repeat=2, cooldown=False))
    assert [e[0] for e in events] == ["run"] * 4


def test_a_lost_phone_ends_its_runs_and_one_artifact_alone_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    lost = RunLost("fake-1", "20261203-070000-abcdef", DeviceError("the cable went away"))
    events = _events(monkeypatch, {"b.litertlm": lost})
    runs = run_repeats(_phone(30.0), Campaign(artifacts=(A, B), config=BenchConfig(), repeat=3, cooldown=False))
    assert [e[1] for e in events] == ["a.litertlm", "b.litertlm"]  # nothing more after the phone was lost
    assert runs == [["result of a.litertlm #0"], [lost]]
    with pytest.raises(RunLost):
        run_repeats(_phone(30.0), Campaign(artifacts=(B,), config=BenchConfig(), repeat=2))
