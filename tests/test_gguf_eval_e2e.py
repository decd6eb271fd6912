"""GGUF input, the engine-level NLL gap and `edgekit eval`, end to end on tiny models."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgekit.artifact import Artifact, sha256_file
from edgekit.convert import ConvertConfig, ConvertResult, Quant, convert, gguf, nll
from edgekit.convert import windows as win
from edgekit.convert.example import TINY, write_example_model
from edgekit.convert.pipeline import load_reference
from edgekit.engine import open_engine
from tests.conftest import run_cli
from tests.tiny_gguf import q8_0_roundtrip, write_tiny_gemma3_gguf

pytestmark = pytest.mark.slow

# init_std 0.5 gives peaked, trained-like next-token distributions (NLL ~28 nats on the
# built-in text), so a misaligned token or a lossy weight shows in the NLL.
PEAKY = dataclasses.replace(TINY, init_std=0.5)


def _int4_words(model_dir: Path) -> str:
    """How the default int4 is described for a model: the split-table recipe (split_table)."""
    from edgekit.convert.split_table import TableShape, split_rows

    return Quant.INT4.description_for(split_rows(TableShape.read(model_dir)))


@pytest.fixture(scope="module")
def peaky_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_example_model(tmp_path_factory.mktemp("peaky") / "model", PEAKY)


@pytest.fixture(scope="module")
def peaky_fp32(peaky_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConvertResult]:
    # A small KV cache, so the NLL windows must be cut to fit it.
    out = tmp_path_factory.mktemp("peaky32") / "peaky-fp32.litertlm"
    config = ConvertConfig(output=out, quant=Quant.FP32, threads=2, cache_length=128, prefill_lengths=(32,))
    yield convert(peaky_dir, config)


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("gguf") / "tiny-gemma3.gguf"
    model = write_tiny_gemma3_gguf(path)
    return path, model


def test_engine_scores_text_as_pytorch_does_and_a_shifted_reference_would_show(
    peaky_fp32: ConvertResult, peaky_dir: Path
) -> None:
    recorded = peaky_fp32.artifact.manifest.fidelity.nll  # type: ignore[union-attr]
    # 128-token windows: more of them for the same 1024 scored tokens, none past the cache.
    assert recorded.tokens >= 1000 and recorded.windows >= 1024 // (128 - 1)
    assert abs(recorded.gap_nats_per_token) < 0.02
    model, _ = load_reference(peaky_dir)
    text = nll.builtin_text("selection")
    # Each window's context leaves room for the probe's single-token prefills (context_room).
    room = win.context_room(128, (32,))
    gap = nll.measure(
        peaky_fp32.artifact.path,
        model,
        text=text,
        max_tokens=512,
        threads=2,
        max_window_tokens=128,
        max_context_tokens=room,
    )
    assert 480 <= gap.tokens <= 512 and gap.text.section == "selection"
    assert gap.reference_nll > 5  # peaked: a wrong alignment cannot hide in flat logits
    assert abs(gap.gap_nats_per_token) < 0.02, gap
    # An off-by-one scorer (each token judged by the logits at its own position) is far away.
    import torch

    with open_engine(peaky_fp32.artifact.path, threads=2) as engine:
        windows = win.tokenize_windows(
            win.split_windows(text.documents),
            engine.tokenize,
            max_tokens=512,
            max_window_tokens=128,
            max_context_tokens=room,
            round_trips=lambda i: list(engine.tokenize(engine.detokenize([i]))) == [i],  # as measure() does
        )
        bos = engine.bos_token_id
    assert max(len(w.context_ids) for w in windows) <= room
    assert bos is not None
    right = np.concatenate(nll.reference_nll(model, bos, windows)).mean()
    assert right == pytest.approx(gap.reference_nll)
    wrong = []
    with torch.no_grad():
        for w in windows:
            seq = [bos, *w.context_ids, *w.continuation_ids]
            logp = torch.log_softmax(model(torch.tensor([seq])).logits[0].double(), -1)
            n = len(w.continuation_ids)
            wrong.extend(-logp[-n:].gather(1, torch.tensor(w.continuation_ids)[:, None])[:, 0].numpy())
    assert abs(np.mean(wrong) - gap.artifact_nll) > 1.0


def test_convert_fails_when_the_nll_gap_passes_its_ceiling(peaky_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "peaky-int4.litertlm"
    proc = run_cli(
        "convert", str(peaky_dir), "-o", str(out), "--threads", "2", "--min-agreement", "0", "--max-nll-gap", "0.01"
    )
    assert proc.returncode == 4, proc.stderr
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith(f"edgekit: error: {_int4_words(peaky_dir)}: NLL gap +0.")
    assert "nats/token > 0.01 vs PyTorch" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_gguf_materializes_to_the_same_weights(tiny_gguf: tuple[Path, object], tmp_path: Path) -> None:
    path, model = tiny_gguf
    info = gguf.gguf_info(path)
    assert info.architecture == "gemma3" and info.model_type == "gemma3_text"
    assert info.tensor_types == {"F32": 13, "Q8_0": 15} and info.sha256 == sha256_file(path)
    out = gguf.materialize(path, tmp_path / "hf", info=info)
    loaded, tok = load_reference(out)
    expected = model.state_dict()  # type: ignore[attr-defined]
    for name, tensor in loaded.state_dict().items():
        want = expected[name].numpy()
        want = q8_0_roundtrip(want) if want.ndim == 2 else want
        np.testing.assert_allclose(tensor.numpy(), want, atol=1e-6, err_msg=name)
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    assert tok("hello", add_special_tokens=True)["input_ids"][0] == 2  # <bos>, as the GGUF says
    with pytest.raises(Exception, match="not empty"):
        gguf.materialize(path, out, info=info)


def test_convert_a_gguf_file_records_its_hash_and_caches(tiny_gguf: tuple[Path, object], tmp_path: Path) -> None:
    path, _ = tiny_gguf
    out = tmp_path / "from-gguf.litertlm"
    args = ("convert", str(path), "-o", str(out), "--threads", "2", "--min-agreement", "0.25")
    proc = run_cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)["manifest"]
    assert m["source"]["kind"] == "gguf" and m["source"]["sha256"] == sha256_file(path)
    assert m["source"]["path"] == str(path.resolve())
    assert m["source"]["gguf"]["architecture"] == "gemma3" and m["source"]["gguf"]["tensor_types"]["Q8_0"] == 15
    assert "model.safetensors" in m["source"]["materialized_files"]
    assert m["model"]["model_type"] == "gemma3_text"
    # Up to 1024: a window that would pass the budget loses whole words.
    assert m["fidelity"]["passed"] and 1000 <= m["fidelity"]["nll"]["tokens"] <= 1024
    assert Artifact.load(out).verify() == m["sha256"]
    # Notes name the user's file, never edgekit's temp folder.
    assert ".edgekit-" not in proc.stderr
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"up to date (cached, same input and settings) {out} (")


def test_bad_gguf_inputs_are_one_line_errors(tiny_gguf: tuple[Path, object], tmp_path: Path) -> None:
    import gguf as gguf_package

    not_gguf = tmp_path / "weights.bin"
    not_gguf.write_bytes(b"\x00" * 64)
    llama = tmp_path / "llama.gguf"
    writer = gguf_package.GGUFWriter(str(llama), "llama")
    writer.add_block_count(1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(tiny_gguf[0].read_bytes()[:300])
    cases = {
        not_gguf: "is a file but no GGUF: give a Hugging Face checkpoint folder or a .gguf file",
        llama: "holds a 'llama' model: edgekit converts GGUF files of gemma3, qwen2, qwen3, lfm2",
        truncated: "is a truncated or corrupt GGUF file",
    }
    for source, message in cases.items():
        out = tmp_path / "out.litertlm"
        proc = run_cli("convert", str(source), "-o", str(out))
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.gguf", "llama.gguf", "weights.bin"]


def test_eval_command_json_and_human_output(int4_result: ConvertResult, tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    art = str(int4_result.artifact.path)
    proc = run_cli("eval", art, "--reference", str(tiny_gemma3_dir), "--max-tokens", "256", "--threads", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["recipe"] == _int4_words(tiny_gemma3_dir)
    assert data["artifact_sha256"] == sha256_file(int4_result.artifact.path)
    gap = data["nll"]
    assert 200 <= gap["tokens"] <= 256 and gap["text"]["name"] == "builtin:report"
    assert gap["gap_nats_per_token"] == pytest.approx(gap["artifact_nll"] - gap["reference_nll"])
    assert gap["text"]["files"]["gensim/test/test_data/lee.cor"].startswith("a878f9a5")
    text = tmp_path / "prose.txt"
    text.write_text(" ".join(f"word{i % 37} of the phone battery" for i in range(60)) + "\n")
    human = run_cli(
        "eval", art, "--reference", str(tiny_gemma3_dir), "--max-tokens", "64", "--threads", "2", "--text", str(text)
    )
    assert human.returncode == 0, human.stderr
    first, second, third = human.stdout.splitlines()
    assert first.startswith(f"{_int4_words(tiny_gemma3_dir)}: ")
    assert " nats/token vs fp32 PyTorch on " in first and "tokens of file:prose.txt" in first
    assert second.startswith("  mean NLL: artifact ")
    assert third.startswith("  bits per byte: artifact ") and "the same tokens" in third
    assert "Loading weights" not in human.stderr  # transformers' progress goes to the log


def test_eval_bad_inputs(
    int4_result: ConvertResult,
    tiny_gemma3_dir: Path,
    peaky_fp32: ConvertResult,
    tiny_gguf: tuple[Path, object],
    tmp_path: Path,
) -> None:
    art = str(int4_result.artifact.path)
    # Same shape and vocabulary size, but a sentencepiece vocabulary instead of byte-level BPE.
    other_tokenizer = gguf.materialize(tiny_gguf[0], tmp_path / "other")
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"TFL3" + b"\x00" * 60)
    short = tmp_path / "short.txt"
    short.write_text("too short")
    ref = str(tiny_gemma3_dir)
    cases = [
        (("eval", str(tmp_path / "nope.litertlm"), "--reference", ref), 2, "does not exist"),
        (("eval", str(tflite), "--reference", ref), 2, "is not a .litertlm bundle"),
        (("eval", art, "--reference", str(tmp_path)), 2, "has no config.json"),
        (("eval", art, "--reference", ref, "--text", str(short)), 2, "is too short"),
        (("eval", art, "--reference", ref, "--text", str(short), "--section", "selection"), 2, "drop it"),
        (("eval", art, "--reference", str(other_tokenizer), "--max-tokens", "64"), 2, "tokenizes text differently"),
        # Same tokenizer, other weights: the gap is large, and --max-nll-gap turns it into exit 4.
        (
            ("eval", str(peaky_fp32.artifact.path), "--reference", ref, "--max-tokens", "64", "--max-nll-gap", "0.5"),
            4,
            "worse",
        ),
    ]
    for args, code, message in cases:
        proc = run_cli(*args, "--threads", "2")
        assert proc.returncode == code, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, proc.stderr)
        assert proc.stdout == ""
