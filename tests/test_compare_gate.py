"""`edgekit compare` is a gate that cannot be fooled (issue 17, rows 7 and 13), through the CLI.

The results are made the way battery-bench makes them: a run on edgekit.testing.FakeDevice
(session.start_run, the driver's files as driver.sh leaves them, session.collect, which
assembles the BenchResult) written with BenchResult.write; variants are dataclasses.replace
of such a result, written the same way.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from edgekit.bench import run_folder, session
from edgekit.bench.config import BenchConfig
from edgekit.bench.result import EXIT_FAILED, BenchResult
from edgekit.device.base import ShellResult
from edgekit.errors import EXIT_REGRESSION
from edgekit.runtimes.litert_lm.bundle_writer import TFLITE_MODEL, write_bundle
from edgekit.runtimes.litert_lm.runner_standin import write_runner_standin
from edgekit.testing import FakeDevice
from tests.conftest import run_cli, small_workload
from tests.typed_results import schema1_result

CAPTURES = Path(__file__).parent / "captures"
TURNS = [["Say hi.", "Now say bye."]]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # remember_runner (the CLI's) writes the user cache: one per test.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("EDGEKIT_RUNNER", raising=False)


def _events(run_dir: str, fake: FakeDevice, events: list[tuple[int, str, str, int]]) -> None:
    fake.write(f"{run_dir}/events.csv", "".join(f"{t},{n},{k},{i}\n" for t, n, k, i in events).encode())
    fake.write(f"{run_dir}/samples.csv", b"")
    fake.write(f"{run_dir}/status", b"done\n")


def _fake_run(
    tmp_path: Path, *, failed: bool = False, turns: list[list[str]] = TURNS, model: bytes = b"model bytes "
) -> BenchResult:
    """One conversation of two turns on the FakeDevice through a sync multi-turn runner;
    `failed`: its runner crashes (SIGSEGV) before the first answer, as exit 7 runs do."""
    folder = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    folder.mkdir()
    fake = FakeDevice()
    fake.on_script(r"driver\.sh", lambda script: ShellResult(0, "", ""))
    (folder / "runner").mkdir()
    runner = write_runner_standin(folder / "runner" / "litert_lm_advanced_main", "advanced")
    artifact = write_bundle(folder / "m.litertlm", [(TFLITE_MODEL, model * 1000)])
    config = BenchConfig(workload=small_workload(folder, turns=turns), runner=runner, baseline_s=0.0)
    run_id = session.start_run(fake, artifact, config)
    run_dir = run_folder.run_paths(fake, run_id, "").run_dir
    start = [(1000, "driver_start", "boot1", 0), (1000, "workload_start", "", 0), (1000, "conv_start", "0001", 0)]
    if failed:
        crash = [(1100, "turn_send", "0001", 1), (1200, "conv_end", "0001", 139), (1200, "first_failed", "0001", 0)]
        _events(run_dir, fake, [*start, *crash, (1300, "workload_end", "", 0)])
        fake.write(f"{run_dir}/err/0001.txt", b"Segmentation fault\n")
    else:
        _events(
            run_dir,
            fake,
            [
                *start,
                (1100, "turn_send", "0001", 1),
                (1400, "turn_first", "0001", 1),
                (1900, "turn_end", "0001", 1),
                (2000, "turn_send", "0001", 2),
                (2300, "turn_end", "0001", 2),
                (2400, "conv_end", "0001", 0),
                (2500, "workload_end", "", 0),
            ],
        )
        fake.write(f"{run_dir}/out/0001.txt", b"Hello!\nBye.\n")
        stderr = (CAPTURES / "litert_lm_advanced_main-multiturn-sync.stderr.txt").read_bytes()
        fake.write(f"{run_dir}/err/0001.txt", stderr)
        fake.write(f"{run_dir}/done/0001", b"")
    return session.collect(fake, run_id)


def _write(result: BenchResult, path: Path) -> str:
    return str(result.write(path))


def _lines(text: str) -> list[str]:
    return text.strip().splitlines()


def test_a_failed_run_as_b_is_a_regression_with_its_own_exit_code(tmp_path: Path) -> None:
    good, failed = _fake_run(tmp_path), _fake_run(tmp_path, failed=True)
    assert good.exit_code() == 0 and good.summary.decode_tokens_per_s
    assert failed.exit_code() == EXIT_FAILED and failed.summary.decode_tokens_per_s is None
    a, b = _write(good, tmp_path / "a.json"), _write(failed, tmp_path / "b.json")

    same = run_cli("compare", a, a, "--fail-on-regression", "5")
    assert same.returncode == 0, same.stderr
    assert same.stderr == "" and "REGRESSION" not in same.stdout

    proc = run_cli("compare", a, b, "--fail-on-regression", "5")
    assert EXIT_REGRESSION not in (0, 1, 2) and proc.returncode == EXIT_REGRESSION, proc.stderr
    missing = (
        "decode_tokens_per_s (missing from B), prefill_tokens_per_s (missing from B), ttft_s_median (missing from B)"
    )
    assert _lines(proc.stderr) == [f"edgekit: error: regression beyond 5.0%: {missing}"]
    decode = next(line for line in proc.stdout.splitlines() if line.startswith("decode_tokens_per_s "))
    assert decode.endswith("REGRESSION (missing from B)")

    as_json = run_cli("compare", a, b, "--fail-on-regression", "5", "--json")
    assert as_json.returncode == EXIT_REGRESSION and as_json.stderr == ""
    rows = {d["key"]: d for d in json.loads(as_json.stdout)}
    assert rows["decode_tokens_per_s"]["missing"] and rows["decode_tokens_per_s"]["regression"]
    assert (
        rows["decode_tokens_per_s"]["b"] is None
        and rows["decode_tokens_per_s"]["a"] == good.summary.decode_tokens_per_s
    )
    # Battery figures neither run has (no counters on the fake) are not B's regression.
    assert not rows["battery_pct_per_25_conversations"]["regression"]

    # Without a threshold compare shows the difference and gates nothing.
    shown = run_cli("compare", a, b)
    assert shown.returncode == 0, shown.stderr
    assert "worse (missing from B)" in shown.stdout


def test_a_slower_b_is_a_regression_and_a_faster_one_is_not(tmp_path: Path) -> None:
    good = _fake_run(tmp_path)
    decode = good.summary.decode_tokens_per_s
    assert decode is not None
    a = _write(good, tmp_path / "a.json")

    def variant(name: str, value: float) -> str:
        summary = dataclasses.replace(good.summary, decode_tokens_per_s=value)
        return _write(dataclasses.replace(good, summary=summary), tmp_path / name)

    slower = run_cli("compare", a, variant("slower.json", decode * 0.9), "--fail-on-regression", "5")
    assert slower.returncode == EXIT_REGRESSION
    assert _lines(slower.stderr) == ["edgekit: error: regression beyond 5.0%: decode_tokens_per_s"]
    faster = run_cli("compare", a, variant("faster.json", decode * 2), "--fail-on-regression", "5")
    assert faster.returncode == 0, faster.stderr
    # 10% slower is within a 20% threshold; any change at all beyond 0%.
    assert run_cli("compare", a, str(tmp_path / "slower.json"), "--fail-on-regression", "20").returncode == 0
    assert (
        run_cli("compare", a, str(tmp_path / "slower.json"), "--fail-on-regression", "0").returncode == EXIT_REGRESSION
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [("nan", "nan"), ("NaN", "nan"), ("inf", "inf"), ("-inf", "-inf"), ("-5", "-5"), ("-0.001", "-0.001")],
)
def test_a_threshold_that_is_not_finite_and_at_least_0_is_refused_when_parsed(
    tmp_path: Path, value: str, shown: str
) -> None:
    # The files do not exist: a refusal at parse time names the value, not a missing file.
    proc = run_cli("compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--fail-on-regression", value)
    assert proc.returncode == 2
    assert _lines(proc.stderr)[-1] == (
        f"edgekit: error: Invalid value for '--fail-on-regression': {shown} is not a finite percentage >= 0 "
        "(e.g. 5, or 0 for any change)"
    )
    assert "a.json" not in proc.stderr


@pytest.mark.parametrize(
    ("which", "field", "value"),
    [
        ("a", "summary.decode_tokens_per_s", math.nan),
        ("b", "summary.ttft_s_median", math.inf),
        ("b", "summary.battery_pct_ci95[1]", -math.inf),
        ("a", "turns[1].decode_tokens_per_s", math.nan),
    ],
)
def test_nan_or_inf_in_either_result_is_one_line_naming_the_field_and_file(
    tmp_path: Path, which: str, field: str, value: float
) -> None:
    good = _fake_run(tmp_path)
    if field.startswith("summary.battery_pct_ci95"):
        bad = dataclasses.replace(good, summary=dataclasses.replace(good.summary, battery_pct_ci95=(0.1, value)))
    elif field.startswith("summary."):
        bad = dataclasses.replace(good, summary=dataclasses.replace(good.summary, **{field.split(".")[1]: value}))
    else:
        turns = list(good.turns)
        turns[1] = dataclasses.replace(turns[1], decode_tokens_per_s=value)
        bad = dataclasses.replace(good, turns=turns)
    paths = {"a": _write(good, tmp_path / "a.json"), "b": _write(good, tmp_path / "b.json")}
    paths[which] = _write(bad, tmp_path / f"{which}.json")
    assert ("NaN" if math.isnan(value) else "Infinity") in Path(paths[which]).read_text()  # as edgekit writes it
    for extra in ([], ["--fail-on-regression", "5"], ["--json"]):
        proc = run_cli("compare", paths["a"], paths["b"], *extra)
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        assert _lines(proc.stderr) == [
            f"edgekit: error: {paths[which]}: {field} is {value}: not a figure edgekit can compare"
        ]


def test_results_of_different_workloads_are_refused_unless_allowed(tmp_path: Path) -> None:
    one, other = _fake_run(tmp_path), _fake_run(tmp_path, turns=[["Say hi.", "Now say goodbye."]])
    assert one.workload.name == other.workload.name and one.workload.sha256 != other.workload.sha256
    assert one.artifact.sha256 == other.artifact.sha256
    a, b = _write(one, tmp_path / "a.json"), _write(other, tmp_path / "b.json")
    proc = run_cli("compare", a, b, "--fail-on-regression", "5")
    assert proc.returncode == 2 and proc.stdout == ""
    w = one.workload
    assert _lines(proc.stderr) == [
        f"edgekit: error: {a} and {b} are not comparable: workload differs: A ran {w.name} v{w.version} "
        f"(sha256 {w.sha256[:12]}), B ran {w.name} v{w.version} (sha256 {other.workload.sha256[:12]}) "
        "(--allow-different to compare anyway)"
    ]
    allowed = run_cli("compare", a, b, "--allow-different", "--json")
    assert allowed.returncode == 0, allowed.stderr
    assert [d["key"] for d in json.loads(allowed.stdout)][:2] == ["decode_tokens_per_s", "prefill_tokens_per_s"]


def test_artifacts_of_different_models_are_refused_and_of_one_model_compared(tmp_path: Path) -> None:
    # The schema-1 emulated result carries a manifest (model_type gemma3_text, 107200 parameters).
    base = schema1_result("result-emulated")
    manifest = base.artifact.manifest
    assert manifest is not None
    a = _write(base, tmp_path / "a.json")

    # Another conversion of the same model (another sha256): what compare is for.
    requantized = dataclasses.replace(base.artifact, sha256="0" * 64, name="tiny-int8.litertlm")
    b_same = _write(dataclasses.replace(base, artifact=requantized), tmp_path / "same-model.json")
    proc = run_cli("compare", a, b_same, "--fail-on-regression", "5")
    assert proc.returncode == 0, proc.stderr

    model = dataclasses.replace(manifest.model, model_type="qwen3", parameter_count=600_000_000)
    other = dataclasses.replace(requantized, manifest=dataclasses.replace(manifest, model=model))
    b_other = _write(dataclasses.replace(base, artifact=other), tmp_path / "other-model.json")
    proc = run_cli("compare", a, b_other, "--fail-on-regression", "5")
    assert proc.returncode == 2 and proc.stdout == ""
    assert _lines(proc.stderr) == [
        f"edgekit: error: {a} and {b_other} are not comparable: model differs: A's artifact is gemma3_text "
        "(107200 parameters), B's is qwen3 (600000000 parameters) (--allow-different to compare anyway)"
    ]
    assert run_cli("compare", a, b_other, "--allow-different").returncode == 0

    # B's artifact has no manifest (provenance unknown) and another sha256: not known to be the same model.
    unknown = dataclasses.replace(requantized, manifest=None, provenance="unknown")
    b_unknown = _write(dataclasses.replace(base, artifact=unknown), tmp_path / "unknown-model.json")
    proc = run_cli("compare", a, b_unknown)
    assert proc.returncode == 2
    assert _lines(proc.stderr) == [
        f"edgekit: error: {a} and {b_unknown} are not comparable: artifact differs (A {base.artifact.name} "
        f"sha256 {base.artifact.sha256[:12]}, B tiny-int8.litertlm sha256 000000000000) and B has no manifest, "
        "so whether it is the same model cannot be told (--allow-different to compare anyway)"
    ]


def test_artifacts_without_a_manifest_are_one_model_only_by_their_sha256(tmp_path: Path) -> None:
    one, other = _fake_run(tmp_path), _fake_run(tmp_path, model=b"other bytes ")
    assert one.artifact.manifest is None and one.artifact.provenance == "unknown"
    assert one.artifact.sha256 != other.artifact.sha256 and one.workload.sha256 == other.workload.sha256
    a, b = _write(one, tmp_path / "a.json"), _write(other, tmp_path / "b.json")
    proc = run_cli("compare", a, b)
    assert proc.returncode == 2
    [line] = _lines(proc.stderr)
    assert line.startswith(f"edgekit: error: {a} and {b} are not comparable: artifact differs (A m.litertlm sha256 ")
    assert "and neither has a manifest, so whether it is the same model cannot be told" in line
    assert run_cli("compare", a, b, "--allow-different").returncode == 0


def test_json_is_valid_json_even_when_a_change_has_no_finite_percentage(tmp_path: Path) -> None:
    good = _fake_run(tmp_path)
    # Time to first token: A's is tiny (finite), B's 1 s: the relative change overflows to inf.
    tiny = dataclasses.replace(good, summary=dataclasses.replace(good.summary, ttft_s_median=1e-310))
    slow = dataclasses.replace(good, summary=dataclasses.replace(good.summary, ttft_s_median=1.0))
    a, b = _write(tiny, tmp_path / "a.json"), _write(slow, tmp_path / "b.json")
    proc = run_cli("compare", a, b, "--fail-on-regression", "5", "--json")
    assert proc.returncode == EXIT_REGRESSION, proc.stderr
    assert "Infinity" not in proc.stdout and "NaN" not in proc.stdout
    rows = {d["key"]: d for d in json.loads(proc.stdout)}
    ttft = rows["ttft_s_median"]
    assert ttft["change_pct"] is None and ttft["worse"] and ttft["regression"] and not ttft["missing"]
    assert [k for k, d in rows.items() if d["regression"]] == ["ttft_s_median"]


def test_the_regression_exit_code_is_its_own_and_the_one_documented() -> None:
    from edgekit import cli, errors
    from edgekit.bench.result import EXIT_VOID

    others = {c.exit_code for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.EdgekitError)}
    others |= {EXIT_VOID, EXIT_FAILED, cli.EXIT_INTERNAL, errors.EXIT_INTERRUPTED, errors.EXIT_TERMINATED}
    assert EXIT_REGRESSION not in others | {0, errors.EXIT_HANGUP, errors.EXIT_STILL_RUNNING}
    help_text = run_cli("compare", "--help").stdout
    assert f"exit {EXIT_REGRESSION} on a regression beyond 5%" in help_text
    assert f"Exit {EXIT_REGRESSION} if any figure of B is worse" in " ".join(help_text.split())
    docs = (Path(__file__).parent.parent / "docs" / "battery-bench.md").read_text()
    assert f"| {EXIT_REGRESSION} | `compare --fail-on-regression` only: a regression" in docs
    assert f"a regression exits **{EXIT_REGRESSION}** (`EXIT_REGRESSION`)" in docs


def test_the_library_gate_refuses_what_the_cli_refuses(tmp_path: Path) -> None:
    from edgekit.errors import InputError
    from edgekit.report import compare

    good = _fake_run(tmp_path)
    for bad in (math.nan, math.inf, -1.0):
        with pytest.raises(InputError, match="--fail-on-regression must be a finite percentage >= 0"):
            compare(good, good, bad)
    nan = dataclasses.replace(good, summary=dataclasses.replace(good.summary, prefill_tokens_per_s=math.nan))
    with pytest.raises(InputError, match=r"^B: summary.prefill_tokens_per_s is nan: "):
        compare(good, nan)
    assert not any(d.regression for d in compare(good, good, 0))
