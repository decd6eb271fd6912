"""Workload validation, power math and result round trip, on synthetic data."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from edgekit._typed import to_data
from edgekit.bench.gauge import PowerSample, decide_conventions
from edgekit.bench.power import analyse_segments
from edgekit.bench.result import SUMMARY_KEYS, BenchResult, PowerRecord, Summary, TurnRecord, summarize
from edgekit.bench.workload import load_workload
from edgekit.errors import InputError
from tests.conftest import run_cli
from tests.typed_results import schema1_result


def test_chat25_is_shipped_and_valid() -> None:
    w = load_workload()
    assert (w.name, w.version, w.max_output_tokens) == ("chat-25", 1, 64)
    assert len(w.conversations) == 25
    assert all(2 <= len(c.turns) <= 5 for c in w.conversations)
    assert len({c.id for c in w.conversations}) == 25
    assert len(w.sha256) == 64


HEADER = '{"workload": "mine", "version": 2, "max_output_tokens": 8}\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        (HEADER, "has no conversations"),
        ('{"id": "a", "turns": ["x"]}\n', "line 1: the first line must be the header"),
        (HEADER + '{"id": "a", "turns": ["x"]}\n{not json}\n', "line 3: not valid JSON"),
        (HEADER + '{"id": "a", "turns": []}\n', "line 2: 'turns' must be a list of non-empty strings"),
        (HEADER + '{"id": "a", "turns": ["x"]}\n{"id": "a", "turns": ["y"]}\n', "line 3: id 'a' is used twice"),
        (HEADER + '{"id": "", "turns": ["x"]}\n', "line 2: 'id' must be a non-empty string"),
        (HEADER + '{"turns": ["x"]}\n', r"line 2: Object missing required field `id`$"),
        (HEADER + '{"id": "a", "turns": "x"}\n', r"line 2: Expected `array`, got `str` - at `\$.turns`$"),
        (HEADER + '{"id": "a", "turns": ["x", 3]}\n', r"line 2: Expected `str`, got `int` - at `\$.turns\[1\]`$"),
        (HEADER + '["a"]\n', r"line 2: Expected `object`, got `array`$"),
        ('{"workload": "w", "version": "2"}\n{"id": "a", "turns": ["x"]}\n', r"line 1: .* at `\$.version`$"),
        ('{"workload": "w", "max_output_tokens": 0}\n{"id": "a", "turns": ["x"]}\n', "positive integers"),
    ],
)
def test_malformed_workloads_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "w.jsonl"
    f.write_text(text)
    with pytest.raises(InputError, match=message) as caught:
        load_workload(f)
    assert str(caught.value).startswith(f"workload {f}") and "\n" not in str(caught.value)


def test_an_ill_typed_workload_is_one_line_through_the_cli(tmp_path: Path) -> None:
    f = tmp_path / "w.jsonl"
    f.write_text(HEADER + '{"id": "a", "turns": ["x"]}\n{"id": "b", "turn": ["y"]}\n')
    artifact = tmp_path / "model.litertlm"
    artifact.write_bytes(b"x")
    proc = run_cli("battery-bench", "--device", "local", "--workload", str(f), str(artifact))
    assert proc.returncode == 2
    line = f"edgekit: error: workload {f}, line 3: Object missing required field `turns`"
    assert proc.stderr.strip().splitlines() == [line]


def test_user_workload_newlines_in_turns_become_spaces(tmp_path: Path) -> None:
    f = tmp_path / "w.jsonl"
    f.write_text(HEADER + json.dumps({"id": "a", "turns": ["line one\nline two; $(rm -rf /)"]}) + "\n")
    w = load_workload(f)
    assert w.conversations[0].turns == ("line one line two; $(rm -rf /)",)


def _samples(
    *,
    sign: int,
    unit_ma: bool = False,
    idle_ma: float = 50,
    busy_ma: float = 450,
    busy: tuple[float, float] = (20, 40),
    step_uah: int = 1000,
    charging: bool = False,
) -> list[PowerSample]:
    out = []
    charge = 3_000_000.0
    for i in range(0, 601):
        t = i * 0.1
        ma = busy_ma if busy[0] <= t < busy[1] else idle_ma
        if charging:
            ma -= 1500
        charge -= ma * 1000 * 0.1 / 3600
        raw = ma * (1 if unit_ma else 1000) * sign
        volts = 4.0 - ma / 1000 * 0.1
        out.append(
            PowerSample(
                t_s=t,
                charge_counter_uah=int(charge // step_uah * step_uah),
                current_raw=int(raw),
                voltage_uv=int(volts * 1e6),
                level_pct=80,
                temperature_c=30.0,
                status=2 if charging else 3,
            )
        )
    return out


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("unit_ma", [False, True])
def test_conventions_and_baseline_subtraction(sign: int, unit_ma: bool) -> None:
    samples = _samples(sign=sign, unit_ma=unit_ma)
    conv = decide_conventions(samples)
    assert conv is not None
    assert conv.discharge_sign == sign
    assert conv.current_unit == ("mA" if unit_ma else "uA")
    report = analyse_segments(samples, baseline=(0.0, 15.0), segments=[(15.0, 60.0)], sample_period_s=0.1)
    # Truth: 400 mA extra for 20 s = 2.2222 mAh; energy (4.0-0.045)*450 - (4.0-0.005)*50 mW for 20 s.
    assert report.workload_charge_mah == pytest.approx(400 * 20 / 3600, rel=0.02)
    excess_mw = (4.0 - 0.045) * 450 - (4.0 - 0.005) * 50
    assert report.workload_energy_mwh == pytest.approx(excess_mw * 20 / 3600, rel=0.02)
    assert report.baseline_current_ma == pytest.approx(50, rel=0.01)
    # No supply, screen or thermal state in these samples, one baseline: warnings only.
    assert {f.code for f in report.flags} == {
        "supply_unknown",
        "screen_unknown",
        "thermal_unknown",
        "baseline_not_bracketed",
    }
    assert not report.voided


def test_charging_voids_the_headline() -> None:
    report = analyse_segments(
        _samples(sign=-1, charging=True), baseline=(0, 15), segments=[(15, 60)], sample_period_s=0.1
    )
    assert report.voided and {f.code for f in report.flags if f.voids} == {"charging"}


def test_missing_counters_void_the_headline() -> None:
    samples = [
        PowerSample(
            t_s=i,
            charge_counter_uah=None,
            current_raw=None,
            voltage_uv=None,
            level_pct=80,
            temperature_c=None,
            status=3,
        )
        for i in range(10)
    ]
    report = analyse_segments(samples, baseline=None, segments=[(0, 9)], sample_period_s=1)
    assert report.voided and report.flags[0].code == "counters_missing"
    assert report.workload_charge_mah is None


def test_sampler_gap_voids_and_low_battery_warns() -> None:
    samples = [s for s in _samples(sign=-1) if not 30 <= s.t_s < 35]
    samples = [PowerSample(**{**s.__dict__, "level_pct": 10}) for s in samples]
    report = analyse_segments(samples, baseline=(0, 15), segments=[(15, 60)], sample_period_s=0.1)
    assert {f.code for f in report.flags if f.voids} == {"suspended"}
    assert "low_battery" in {f.code for f in report.flags if not f.voids}


def _turn(n: int, tokens: int, tps: float, ttft: float) -> TurnRecord:
    return TurnRecord(
        conversation="c",
        conversation_index=1,
        turn_index=n,
        prompt_tokens=10,
        output_tokens=tokens,
        ttft_s=ttft,
        prefill_tokens_per_s=100.0,
        decode_tokens_per_s=tps,
        wall_s=1.0,
        t_start_s=float(n),
        t_end_s=n + 1.0,
    )


def test_summary_keys_scaling_and_round_trip(tmp_path: Path) -> None:
    report = analyse_segments(_samples(sign=-1), baseline=(0, 15), segments=[(15, 60)], sample_period_s=0.1)
    turns = [_turn(1, 30, 30.0, 0.2), _turn(2, 10, 10.0, 0.4)]
    summary = summarize(turns, report, conversations=5, duration_s=45.0, capacity_mah=4000)
    assert tuple(to_data(summary)) == SUMMARY_KEYS
    assert summary.decode_tokens_per_s == pytest.approx(40 / 2.0)  # 40 tokens in 1 s + 1 s
    assert summary.ttft_s_median == pytest.approx(0.3)
    expected_pct = report.workload_charge_mah / 4000 * 100 * 25 / 5  # type: ignore[operator]
    assert summary.battery_pct_per_25_conversations == pytest.approx(expected_pct)
    assert summary.mj_per_output_token == pytest.approx(report.workload_energy_mwh * 3600 / 40)  # type: ignore[operator]
    result = dataclasses.replace(
        schema1_result(),
        turns=turns,
        samples=_samples(sign=-1),
        baseline_window_s=(0.0, 15.0),
        workload_window_s=(15.0, 60.0),
        power=PowerRecord.from_report(report, 0.0, [(0.0, 15.0)]),
        validity=list(report.flags),
        summary=summary,
    )
    path = result.write(tmp_path / "r.json")
    assert BenchResult.load(path) == result
    voided = summarize(turns, None, conversations=5, duration_s=45.0, capacity_mah=4000)
    assert voided.battery_pct_per_25_conversations is None and voided.decode_tokens_per_s is not None
    assert summary.workload_energy_mwh is not None and not math.isnan(summary.workload_energy_mwh)


def test_aggregate_mean_stddev_and_95_interval() -> None:
    from edgekit.bench.aggregate import aggregate

    base = schema1_result()

    def result(pct: float | None) -> BenchResult:
        return dataclasses.replace(base, summary=Summary(battery_pct_per_25_conversations=pct), aggregate=None)

    agg = aggregate([result(0.7), result(0.8), result(0.9)])
    assert tuple(agg) == SUMMARY_KEYS
    pct = agg["battery_pct_per_25_conversations"]
    assert pct.mean == pytest.approx(0.8) and pct.stddev == pytest.approx(0.1) and pct.n == 3
    half = 4.303 * 0.1 / 3**0.5  # Student t, 2 degrees of freedom (printed tables: 4.303)
    assert pct.ci95_low == pytest.approx(0.8 - half, rel=1e-4)
    assert pct.ci95_high == pytest.approx(0.8 + half, rel=1e-4)
    assert agg["ttft_s_median"].mean is None

    # A void run (battery keys null) does not count; one valid run of three has no interval, not ± 0.
    void = result(None)
    agg = aggregate([void, result(0.75), void])
    pct = agg["battery_pct_per_25_conversations"]
    assert (pct.mean, pct.n, pct.runs, pct.stddev, pct.ci95_low) == (0.75, 1, 3, None, None)

    # Headline, report and compare use the aggregate, never only the last run.
    from edgekit.bench.result import figure
    from edgekit.report import compare

    first = result(0.9)
    first.aggregate = aggregate([result(0.7), result(0.8), first])
    assert figure(first, "battery_pct_per_25_conversations").value == pytest.approx(0.8)
    second = result(0.86)
    second.aggregate = aggregate([result(0.84), result(0.85), second])
    diff = next(d for d in compare(first, second, 5) if d.key == "battery_pct_per_25_conversations")
    assert diff.change_pct == pytest.approx(6.25) and diff.worse and diff.within_noise and not diff.regression
    tight_a, tight_b = result(0.8), result(0.95)
    tight_a.aggregate = aggregate([result(0.799), result(0.801), tight_a])
    tight_b.aggregate = aggregate([result(0.95), result(0.951), tight_b])
    diff = next(d for d in compare(tight_a, tight_b, 5) if d.key == "battery_pct_per_25_conversations")
    assert diff.regression and not diff.within_noise
