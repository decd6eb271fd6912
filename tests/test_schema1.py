"""Files written before results and manifests were typed (schema 1) still load, report and
round-trip; a malformed file is one line of bad input, never an internal error.

The fixtures in tests/fixtures/schema1/ were written by main at 4bbd220 (see their README),
with the `.report.md`/`.report.html` that `edgekit report` printed and wrote for them then.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgekit.artifact import Artifact, Manifest
from edgekit.bench.result import BenchResult, figure
from edgekit.bench.validity import ValidityFlag
from edgekit.errors import InputError
from tests.conftest import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "schema1"
RESULTS = ("result-emulated", "result-local")


@pytest.mark.parametrize("name", RESULTS)
def test_schema1_result_loads_typed_and_writes_the_same_json(name: str) -> None:
    path = FIXTURES / f"{name}.json"
    result = BenchResult.load(path)
    assert result.schema_version == 1
    assert result.turns and all(t.conversation and t.turn_index >= 1 for t in result.turns)
    assert result.artifact.manifest is not None and result.artifact.manifest.settings.cache_length.value == 1024
    assert result.workload.name == "chat-25" and result.workload.conversations[0].turns == len(result.turns)
    # Same keys and values on disk after a load (ints read into float fields compare equal).
    assert json.loads(result.to_json()) == json.loads(path.read_text())
    assert BenchResult.from_json(result.to_json()) == result


def test_schema1_emulated_result_has_typed_power_and_samples() -> None:
    result = BenchResult.load(FIXTURES / "result-emulated.json")
    assert result.simulated and result.device.emulated and result.device.emulator == "edgekit device emulator"
    assert result.runner.protocol == "multi_turn" and result.runner.probe
    assert result.power.conventions is not None and result.power.conventions.current_unit == "uA"
    assert result.samples[0].voltage_uv and result.samples[0].voltage_uv > 3_000_000
    assert result.summary.workload_charge_mah is not None and result.summary.workload_charge_mah > 0
    pct = figure(result, "battery_pct_per_25_conversations")
    assert pct.value == result.summary.battery_pct_per_25_conversations
    assert (pct.low, pct.high) == result.summary.battery_pct_ci95
    assert result.exit_code() == 0


def test_schema1_local_result_keeps_its_shape() -> None:
    result = BenchResult.load(FIXTURES / "result-local.json")
    assert result.runner.engine == "litert_lm (litert-lm-api)" and not result.runner.protocol
    assert result.settings.harness_files and not result.settings.capacity_source
    assert result.validity == [
        ValidityFlag(
            code="counters_missing", message="this computer has no readable battery or energy counter", voids=True
        )
    ]
    assert result.battery_absent and result.exit_code() == 0  # speed-only: no battery counters at all


def test_schema1_manifest_loads_typed_and_writes_the_same_json() -> None:
    text = (FIXTURES / "manifest.json").read_text()
    m = Manifest.from_json(text)
    assert m.settings.quant.value == "int4" and m.settings.quant.source == "recipe:gemma3"
    assert m.settings.prefill_lengths.value == (128,)
    assert m.settings.min_agreement is not None and m.settings.min_agreement.source == "flag"
    assert m.settings.min_agreement.given  # given by the user, not a recipe or a default
    assert m.fidelity is not None and m.fidelity.nll is not None and m.fidelity.nll.tokens == 1024
    assert m.quantization is not None and m.quantization.grid is not None and not m.quantization.grid.detected
    assert m.source.kind == "checkpoint_dir" and m.source.files
    assert json.loads(m.to_json()) == json.loads(text)
    assert Manifest.from_json(m.to_json()) == m


@pytest.mark.parametrize("name", RESULTS)
def test_report_on_a_schema1_result_prints_what_it_printed_before(name: str, tmp_path: Path) -> None:
    html_path = tmp_path / "r.html"
    proc = run_cli("report", str(FIXTURES / f"{name}.json"), "-o", str(html_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (FIXTURES / f"{name}.report.md").read_text() + f"\nHTML report: {html_path}\n"
    assert html_path.read_text() == (FIXTURES / f"{name}.report.html").read_text()


def _bad(tmp_path: Path, edit: object) -> Path:
    data = json.loads((FIXTURES / "result-emulated.json").read_text())
    edit(data)  # type: ignore[operator]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda d: d["turns"][0].update(turn_index="one"), "$.turns[0].turn_index"),
        (lambda d: d["turns"][1].pop("conversation"), "$.turns[1]"),
        (lambda d: d["validity"].append({"code": "x", "voids": "yes", "message": "m"}), "$.validity[0].voids"),
        (lambda d: d["summary"].update(duration_s="long"), "$.summary.duration_s"),
        (lambda d: d.update(samples={}), "$.samples"),
    ],
)
def test_malformed_result_is_one_line_of_bad_input(tmp_path: Path, edit: object, where: str) -> None:
    path = _bad(tmp_path, edit)
    with pytest.raises(InputError, match=f"not a valid battery-bench result: .* - at `{re.escape(where)}`"):
        BenchResult.load(path)
    proc = run_cli("report", str(path))
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith("edgekit: error: ") and where in line and "internal error" not in line
    assert not (tmp_path / "bad.html").exists()


def test_malformed_manifest_is_one_line_naming_the_file(tmp_path: Path) -> None:
    art = tmp_path / "m.litertlm"
    art.write_bytes(b"model")
    data = json.loads((FIXTURES / "manifest.json").read_text())
    data["settings"]["cache_length"]["value"] = "big"
    (tmp_path / "m.litertlm.json").write_text(json.dumps(data))
    with pytest.raises(
        InputError, match=r"m\.litertlm\.json: manifest is not valid: .*\$\.settings\.cache_length\.value"
    ):
        Artifact.load(art)
