"""`edgekit convert BASE --adapter DIR` (issue 19 item 0): a LoRA adapter trained here with PEFT
for a few steps on the tiny model, saved as PEFT saves it, merged before export; the artifact
scores exactly as the merged model, not as the base; a misfit adapter is one line.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from edgekit.convert import ConvertConfig, ConvertResult, convert
from edgekit.convert.adapter import PEFT_DEPRECATIONS
from edgekit.convert.evaluate import evaluate
from edgekit.convert.recipes import Quant
from tests.conftest import run_cli

PROSE = "\n\n".join(
    f"Paragraph {i}: the lighthouse keeper counted {i * 7} ships before dawn, wrote their names "
    f"in the log, and walked down the {i}th stair to wake the town below. The baker had the ovens "
    f"lit already, the fishermen mended nets on the quay, and the children ran along the harbour "
    f"wall to see which boats had come home in the night and which were still out at sea."
    for i in range(1, 13)
)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _train_lora(base_dir: Path, out: Path, steps: int = 25) -> Path:
    """A rank-4 LoRA on every projection of `base_dir`, trained `steps` steps on PROSE (PEFT's own
    get_peft_model and save_pretrained: adapter_config.json + adapter_model.safetensors)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(base_dir))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_DEPRECATIONS, category=FutureWarning)
        peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=TARGETS, lora_dropout=0.0))
    ids = tok(PROSE, return_tensors="pt").input_ids[:, :256]
    opt = torch.optim.Adam([p for p in peft_model.parameters() if p.requires_grad], lr=3e-2)
    for _ in range(steps):
        loss = peft_model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    peft_model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def lora(tiny_gemma3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train_lora(tiny_gemma3_dir, tmp_path_factory.mktemp("lora") / "adapter")


@pytest.fixture(scope="module")
def merged_fp32(tiny_gemma3_dir: Path, lora: Path, tmp_path_factory: pytest.TempPathFactory) -> ConvertResult:
    out = tmp_path_factory.mktemp("merged") / "app.litertlm"
    return convert(tiny_gemma3_dir, ConvertConfig(output=out, quant=Quant.FP32, adapter=lora, threads=2))


def test_adapter_is_saved_as_peft_saves_it_and_is_not_zero(lora: Path) -> None:
    from safetensors.torch import load_file

    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in lora.iterdir()}
    weights = load_file(str(lora / "adapter_model.safetensors"))
    b = [w for k, w in weights.items() if k.endswith("lora_B.weight")]
    assert len(b) == 2 * len(TARGETS) and all(float(w.abs().max()) > 1e-3 for w in b)


def test_the_artifact_scores_as_the_merged_model_not_as_the_base(
    merged_fp32: ConvertResult, tiny_gemma3_dir: Path, lora: Path, tmp_path: Path
) -> None:
    from edgekit.artifact import sha256_file
    from edgekit.convert import nll
    from edgekit.convert.pipeline import load_reference

    m = merged_fp32.artifact.manifest
    assert m is not None
    assert m.source.path == str(tiny_gemma3_dir.resolve()) and m.source.kind == "checkpoint_dir"
    recorded = m.source.adapter
    assert recorded.files == {p.name: sha256_file(p) for p in lora.iterdir()}  # type: ignore[union-attr]
    assert recorded.rank == 4 and any(t.endswith("layers.0.mlp.down_proj") for t in recorded.target_modules)  # type: ignore[union-attr]
    assert "model.safetensors" in m.source.materialized_files  # type: ignore[operator]
    assert m.source.materialized_files["model.safetensors"] != m.source.files["model.safetensors"]  # type: ignore[index]

    text_file = tmp_path / "prose.txt"
    text_file.write_text(PROSE, encoding="utf-8")
    text = nll.text_from_file(text_file)
    # edgekit eval finds the adapter in the manifest: the reference is the merged model.
    merged = evaluate(merged_fp32.artifact.path, tiny_gemma3_dir, text=text, max_tokens=400, threads=2)
    assert merged.adapter == str(lora.resolve())
    base_model, _ = load_reference(tiny_gemma3_dir)
    vs_base = nll.measure(merged_fp32.artifact.path, base_model, text=text, max_tokens=400, threads=2)
    # fp32 scored exactly: as the merged model to 1e-3; the base predicts the trained text far worse.
    assert abs(merged.gap.gap_nats_per_token) < 1e-3, merged.gap
    assert vs_base.gap_nats_per_token < -0.05, vs_base
    assert m.fidelity is not None and m.fidelity.nll is not None and abs(m.fidelity.nll.gap_nats_per_token) < 1e-3


def test_eval_names_a_missing_adapter_and_one_that_changed(
    merged_fp32: ConvertResult, tiny_gemma3_dir: Path, lora: Path, tmp_path: Path
) -> None:
    art = tmp_path / "moved.litertlm"
    shutil.copy(merged_fp32.artifact.path, art)
    manifest = json.loads(Path(str(merged_fp32.artifact.path) + ".json").read_text())
    gone = tmp_path / "gone"
    manifest["source"]["adapter"]["path"] = str(gone)
    Path(str(art) + ".json").write_text(json.dumps(manifest))
    r = run_cli("eval", str(art), "--reference", str(tiny_gemma3_dir), "--max-tokens", "50")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"converted with LoRA adapter {gone}, which is gone: pass --adapter DIR" in r.stderr

    changed = tmp_path / "changed"
    shutil.copytree(lora, changed)
    cfg = json.loads((changed / "adapter_config.json").read_text())
    cfg["lora_alpha"] = 1
    (changed / "adapter_config.json").write_text(json.dumps(cfg))
    manifest["source"]["adapter"]["path"] = str(changed)
    Path(str(art) + ".json").write_text(json.dumps(manifest))
    r = run_cli("eval", str(art), "--reference", str(tiny_gemma3_dir), "--max-tokens", "50")
    assert r.returncode == 2 and "changed since" in r.stderr and "adapter_config.json" in r.stderr, r.stderr


def _other_architecture_adapter(out: Path) -> Path:
    """A LoRA trained (PEFT) on a tiny GPT-2, whose modules Gemma 3 does not have."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=64, n_positions=64))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_DEPRECATIONS, category=FutureWarning)
        peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True))
    ids = torch.randint(0, 64, (1, 16))
    peft_model(input_ids=ids, labels=ids).loss.backward()
    peft_model.save_pretrained(str(out))
    return out


def test_an_adapter_that_does_not_fit_is_one_line_and_nothing_is_written(
    tiny_gemma3_dir: Path, lora: Path, tmp_path: Path
) -> None:
    import dataclasses

    from edgekit.convert.example import TINY, write_example_model

    out = tmp_path / "x.litertlm"

    def refused(adapter: Path, base: Path = tiny_gemma3_dir) -> str:
        r = run_cli("convert", str(base), "--adapter", str(adapter), "-o", str(out), "--no-verify")
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not out.exists() and not list(tmp_path.glob(".x.litertlm*")), list(tmp_path.iterdir())
        return r.stderr

    assert "does not exist" in refused(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no adapter_config.json" in refused(empty)
    half = tmp_path / "half"
    shutil.copytree(lora, half)
    (half / "adapter_model.safetensors").unlink()
    assert "has no adapter_model.safetensors" in refused(half)
    gpt2 = _other_architecture_adapter(tmp_path / "gpt2-lora")
    assert "which base" in refused(gpt2) and "another architecture" in refused(gpt2)
    wider = write_example_model(tmp_path / "wider", dataclasses.replace(TINY, hidden_size=2 * TINY.hidden_size))
    assert "trained for another base" in refused(lora, wider)


def test_the_same_base_and_adapter_again_is_a_cache_hit(
    merged_fp32: ConvertResult, tiny_gemma3_dir: Path, lora: Path
) -> None:
    # PEFT's merge is deterministic, so the merged model's files, which the key hashes, are too.
    again = convert(
        tiny_gemma3_dir, ConvertConfig(output=merged_fp32.artifact.path, quant=Quant.FP32, adapter=lora, threads=2)
    )
    assert again.cached and again.artifact.manifest.sha256 == merged_fp32.artifact.manifest.sha256  # type: ignore[union-attr]
