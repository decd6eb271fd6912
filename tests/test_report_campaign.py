"""`edgekit report DIR` on a campaign folder (issue 16 #4): the devices × artifacts matrix,
ratios to the first artifact with an interval, each run's page linked, labels that say what
an emulated phone's figures are. The folder is built from a stored result here; the lab test
(tests/test_lab_e2e.py) has battery-bench write one."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import shutil
from pathlib import Path

import pytest

from edgekit.bench.result import CampaignArtifact, CampaignCell, CampaignRecord, Figure
from edgekit.report_campaign import ratio
from tests.conftest import run_cli

RESULT = Path(__file__).parent / "fixtures" / "schema1" / "result-emulated.json"


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "campaign"
    folder.mkdir(parents=True)
    for name in ("p1-a.json", "p1-b.json", "p2-a.json"):
        shutil.copyfile(RESULT, folder / name)
    record = CampaignRecord(
        created="2026-12-03T07:00:00+00:00",
        repeat=1,
        artifacts=(
            CampaignArtifact(label="a", name="a.litertlm", path="a.litertlm"),
            CampaignArtifact(label="b", name="b.litertlm", path="b.litertlm"),
        ),
        cells=(
            CampaignCell(device="p1", artifact="a", result="p1-a.json", runs=("p1-a.json",), exit_code=0),
            CampaignCell(device="p1", artifact="b", result="p1-b.json", runs=("p1-b.json",), exit_code=0),
            CampaignCell(device="p2", artifact="a", result="p2-a.json", runs=("p2-a.json",), exit_code=0),
            CampaignCell(device="p2", artifact="b", result=None, runs=(), exit_code=5, error="p2: lost"),
        ),
    )
    record.write(folder / "campaign.json")
    assert CampaignRecord.load(folder / "campaign.json") == record  # round trip
    return folder


def test_report_dir_draws_the_matrix_with_ratios_labels_and_run_pages(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    proc = run_cli("report", str(folder))
    assert proc.returncode == 0, proc.stderr
    md = proc.stdout
    assert md.startswith("## battery-bench campaign: 2 devices × 2 artifacts\n")
    table = md.split("### Decode (tok/s)\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[0] == "| device | a | b | b ÷ a |"
    decode = json.loads(RESULT.read_text())["summary"]["decode_tokens_per_s"]
    p1 = table[2].split(" | ")
    assert p1[0] == "| p1" and p1[1] == p1[2] == f"{decode:.1f} tok/s (this computer's CPU)"
    assert p1[3] == "1.000× |"  # the same result twice: a ratio of 1, and no interval without one each
    p2 = table[3].split(" | ")
    assert p2[0] == "| p2" and p2[2] == "failed: p2: lost" and p2[3] == "— |"
    battery = md.split("### Battery per 25 conversations (%)\n\n", 1)[1].splitlines()[2]
    assert "(simulated)" in battery and "this computer's CPU" not in battery
    assert re.search(r"1\.000 \[0\.\d+, 1\.\d+\]×", battery), battery  # both have an interval: so has the ratio
    page = (folder / "report.html").read_text()
    assert proc.stdout.endswith(f"\nHTML report: {folder / 'report.html'}\n")
    for name in ("p1-a", "p1-b", "p2-a"):
        assert f'<a href="{name}.html">result</a>' in page
        assert (folder / f"{name}.html").read_text().startswith("<!DOCTYPE html>")  # each run's own page
    only_md = run_cli("report", str(folder), "--format", "markdown")
    assert only_md.returncode == 0 and only_md.stdout == md.rsplit("\nHTML report:", 1)[0]


def test_report_of_a_folder_without_a_campaign_is_one_error_line(tmp_path: Path) -> None:
    proc = run_cli("report", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"edgekit: error: {tmp_path} has no campaign.json: give a folder that battery-bench -o DIR wrote"
    ]


def test_a_ratios_interval_combines_both_on_the_log_scale() -> None:
    a = Figure(value=10.0, low=9.0, high=11.0, basis="")
    b = Figure(value=20.0, low=16.0, high=24.0, basis="")
    r = ratio(a, b)
    assert r is not None and r.value == 2.0
    se = math.hypot(1 / 1.959963984540054 / 10, 4 / 1.959963984540054 / 20)
    assert r.low == 2.0 * math.exp(-1.959963984540054 * se) and r.high == 2.0 * math.exp(1.959963984540054 * se)
    assert r.low is not None and r.low < 2.0 < r.high  # type: ignore[operator]
    assert ratio(dataclasses.replace(a, low=None, high=None), b) == Figure(
        value=2.0, low=None, high=None, basis="no interval: a figure has none"
    )
    assert ratio(a, dataclasses.replace(b, value=None)) is None


def test_compare_of_two_campaigns_says_which_differences_are_beyond_the_noise(tmp_path: Path) -> None:
    a, b = _folder(tmp_path / "a"), _folder(tmp_path / "b")
    data = json.loads((b / "p1-b.json").read_text())
    pct, high = data["summary"]["battery_pct_per_25_conversations"], data["summary"]["battery_pct_ci95"][1]
    data["summary"]["battery_pct_per_25_conversations"] = pct * 3  # B drains three times as much…
    data["summary"]["battery_pct_ci95"] = [pct * 2.5, pct * 3.5]  # …with an interval clear of A's
    assert pct * 2.5 > high
    (b / "p1-b.json").write_text(json.dumps(data))
    proc = run_cli("compare", str(a), str(b))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    [moved] = [x for x in lines if x.startswith("p1 b battery_pct_per_25_conversations ")]
    assert moved.endswith("+200.0%  BEYOND the noise (worse)")
    [same] = [x for x in lines if x.startswith("p1 a battery_pct_per_25_conversations ")]
    assert same.endswith("+0.0%  within the noise")
    [speed] = [x for x in lines if x.startswith("p1 b decode_tokens_per_s ")]
    assert speed.endswith("no interval: noise unknown")  # one run's speed has no interval
    assert not any(x.startswith("p2 b ") for x in lines)  # p2 ran no b in either campaign
    gate = run_cli("compare", str(a), str(b), "--fail-on-regression", "5", "--json")
    assert gate.returncode == 8
    rows = json.loads(gate.stdout)
    assert [(r["device"], r["artifact"], r["key"]) for r in rows if r["regression"]] == [
        ("p1", "b", "battery_pct_per_25_conversations")
    ]
    assert [r["beyond_noise"] for r in rows if r["regression"]] == [True]


@pytest.mark.parametrize(
    ("lo", "hi"), [(0.0, 1.0), (0.0, 3600.0), (12.3, 98.7), (3.7, 4.2), (0.0, 0.013), (-5.0, 17.0), (150.0, 172.0)]
)
def test_plot_ticks_are_round_numbers_in_1_2_5_steps(lo: float, hi: float) -> None:
    import math

    from edgekit.report import nice_ticks

    ticks = nice_ticks(lo, hi)
    assert 2 <= len(ticks) <= 5 and all(lo - 1e-9 <= t <= hi + 1e-9 for t in ticks), ticks
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 5)) < 1e-6, (ticks, step)
    assert all(abs(t / step - round(t / step)) < 1e-6 for t in ticks)  # each a multiple of the step
    assert all(abs((b - a) - step) < 1e-9 * max(1.0, abs(hi)) for a, b in itertools.pairwise(ticks))
    assert nice_ticks(5.0, 5.0) == [5.0]
