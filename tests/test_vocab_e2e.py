"""`edgekit convert MODEL --vocab-from FILE` (issue 19 items 1, 2, 4) on the tiny model: the table and
the bundled tokenizer trimmed together; the LiteRT-LM engine generates and scores on the result; text
outside the kept set still encodes and decodes; `edgekit eval` reports bits per byte, and compares a
trimmed artifact with the full model by bits per byte over the same text; bad input is one line.

The kept ids are recovered here from the bundle's own tokenizer (unpacked with litert_lm_builder) and
the original tokenizer.json, piece by piece, not from edgekit's record of them.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import zlib
from pathlib import Path
from typing import Any

import pytest

from edgekit.convert import ConvertConfig, ConvertResult, convert
from edgekit.convert.evaluate import evaluate
from edgekit.convert.recipes import Quant
from tests.conftest import run_cli

APP_LINES = [
    "hello please write a short summary of the meeting",
    "the phone battery is fast and the model is small",
    "please check the weather and write the answer",
    "thanks for the friendly email",
]
APP_TEXT = "\n".join(APP_LINES * 3) + "\n"
OUTSIDE = "deploy android pixel translate zebra Überfluss 日本語 negative route"
PROSE = "\n\n".join(
    " ".join(
        ["the", "model", "and", "the", "phone", "write", "a", "short", "poem", "about", "the", "river", "city"][
            (i + j) % 13
        ]
        for j in range(60)
    )
    + f" deploy android pixel translate {i} Überfluss"
    for i in range(10)
)


def _bundle_tokenizer(bundle: Path, scratch: Path) -> dict[str, Any]:
    """The tokenizer.json inside a .litertlm, as litert_lm_builder unpacks it."""
    from litert_lm_builder import litertlm_builder

    litertlm_builder.unpack(str(bundle), str(scratch))
    (section,) = sorted(scratch.glob("*HF_Tokenizer*"))
    blob = section.read_bytes()
    try:
        raw = zlib.decompress(blob[8:])
    except zlib.error:
        raw = zlib.decompress(blob)
    data: dict[str, Any] = json.loads(raw)
    return data


def _kept_old_ids(trimmed: dict[str, Any], original_dir: Path) -> list[int]:
    """The old id of each new id, by piece: new id i is the piece whose old id is kept[i]."""
    original = json.loads((original_dir / "tokenizer.json").read_text())["model"]["vocab"]
    by_new = sorted(trimmed["model"]["vocab"].items(), key=lambda kv: kv[1])
    assert [i for _, i in by_new] == list(range(len(by_new)))
    return [original[piece] for piece, _ in by_new]


@pytest.fixture(scope="module")
def app_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("app") / "app.txt"
    f.write_text(APP_TEXT, encoding="utf-8")
    return f


@pytest.fixture(scope="module")
def trimmed_int4(tiny_gemma3_dir: Path, app_text: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default recipe (int4, Gemma 3's split table), through the CLI."""
    out = tmp_path_factory.mktemp("int4") / "app.litertlm"
    r = run_cli("convert", str(tiny_gemma3_dir), "--vocab-from", str(app_text), "-o", str(out), "--threads", "2")
    assert r.returncode == 0, r.stderr
    assert "vocabulary trimmed to" in r.stderr
    done = [line.rsplit(None, 2)[0] for line in r.stderr.splitlines() if line.startswith("✓ ")]
    assert done[:3] == ["✓ trim vocabulary", "✓ load checkpoint", "✓ export (litert-torch)"], done
    return out


@pytest.fixture(scope="module")
def trimmed_fp32(tiny_gemma3_dir: Path, app_text: Path, tmp_path_factory: pytest.TempPathFactory) -> ConvertResult:
    out = tmp_path_factory.mktemp("fp32") / "app.litertlm"
    config = ConvertConfig(output=out, quant=Quant.FP32, vocab_from=(app_text,), vocab_fill=False, threads=2)
    return convert(tiny_gemma3_dir, config)


@pytest.fixture(scope="module")
def full_fp32(tiny_gemma3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ConvertResult:
    out = tmp_path_factory.mktemp("full") / "full.litertlm"
    return convert(tiny_gemma3_dir, ConvertConfig(output=out, quant=Quant.FP32, threads=2))


@pytest.fixture(scope="module")
def prose(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("prose") / "held-out.txt"
    f.write_text(PROSE, encoding="utf-8")
    return f


def test_the_trimmed_int4_artifact_keeps_what_the_text_needs_and_the_manifest_says_so(
    trimmed_int4: Path, tiny_gemma3_dir: Path, app_text: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    from edgekit.artifact import Artifact, sha256_file

    original_tok = AutoTokenizer.from_pretrained(str(tiny_gemma3_dir))
    trimmed = _bundle_tokenizer(trimmed_int4, tmp_path / "unpacked")
    kept = _kept_old_ids(trimmed, tiny_gemma3_dir)
    full_vocab = json.loads((tiny_gemma3_dir / "config.json").read_text())["vocab_size"]
    assert 256 + 6 < len(kept) < full_vocab
    kept_set = set(kept)
    # Every id the app's text tokenizes to, every special token and every byte symbol of the byte-level BPE.
    assert set(original_tok(APP_TEXT, add_special_tokens=False)["input_ids"]) <= kept_set
    assert {original_tok.convert_tokens_to_ids(t) for t in ("<pad>", "<eos>", "<bos>", "<unk>")} <= kept_set
    assert {original_tok.convert_tokens_to_ids(t) for t in ("<start_of_turn>", "<end_of_turn>")} <= kept_set
    from tokenizers import pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    assert all(trimmed["model"]["vocab"].get(c) is not None for c in alphabet)
    # A merge is kept exactly when its parts and result are.
    for a, b in trimmed["model"]["merges"]:
        assert {a, b, a + b} <= trimmed["model"]["vocab"].keys()

    m = Artifact.load(trimmed_int4).manifest
    assert m is not None
    v = m.source.vocab
    assert v.kept_ids == len(kept) and v.original_vocab_size == full_vocab  # type: ignore[union-attr]
    assert v.kept_ids_sha256 == hashlib.sha256(json.dumps(kept).encode()).hexdigest()  # type: ignore[union-attr]
    assert [(t.path, t.sha256) for t in v.texts] == [(str(app_text.resolve()), sha256_file(app_text))]  # type: ignore[union-attr]
    # The default fills the room the text leaves up to a quarter of the vocabulary beyond what the tokenizer needs.
    assert v.target_size == v.required_ids + full_vocab // 4 and v.filled_ids > 0  # type: ignore[union-attr]
    assert v.kept_ids <= v.target_size  # type: ignore[union-attr]
    assert m.source.path == str(tiny_gemma3_dir.resolve())
    materialized = m.source.materialized_files
    assert materialized["model.safetensors"] != m.source.files["model.safetensors"]  # type: ignore[index]
    # The split table of the default recipe is over the trimmed ids.
    split = m.quantization.table_split
    assert split is not None and split.rows_8bit + split.rows_4bit == len(kept)
    # The text's ids (ranked first) and 32 more at 8 bits, at most three quarters of the kept ids
    # and as many as the untrimmed default's (256 of 512).
    text_ids = v.text_ids  # type: ignore[union-attr]
    assert split.rows_8bit == min(256, (len(kept) * 3 // 4) // 32 * 32, (text_ids + 63) // 32 * 32)
    assert "the ids the --vocab-from texts use" in split.ranking
    assert m.fidelity is not None and m.fidelity.passed


def test_the_engine_generates_and_text_in_and_out_of_the_kept_set_encodes_and_decodes(
    trimmed_int4: Path, tiny_gemma3_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    from edgekit.engine import open_engine, run_prompt

    original_tok = AutoTokenizer.from_pretrained(str(tiny_gemma3_dir))
    kept = _kept_old_ids(_bundle_tokenizer(trimmed_int4, tmp_path / "unpacked"), tiny_gemma3_dir)
    answer = run_prompt(trimmed_int4, "hello please write a short summary", max_output_tokens=8, threads=2)
    assert answer.decode_tokens > 0 and answer.prefill_tokens > 5
    with open_engine(trimmed_int4, threads=2) as engine:
        for line in APP_LINES:  # text the app uses: the same pieces as the full tokenizer's
            ids = list(engine.tokenize(line))
            assert [kept[i] for i in ids] == original_tok(line, add_special_tokens=False)["input_ids"]
        original_ids = original_tok(OUTSIDE, add_special_tokens=False)["input_ids"]
        assert not set(original_ids) <= set(kept)  # some of its pieces were dropped
        ids = list(engine.tokenize(OUTSIDE))
        assert len(ids) > len(original_ids) and max(ids) < len(kept)
        assert engine.detokenize(ids) == OUTSIDE
        assert engine.bos_token_id == kept.index(original_tok.bos_token_id)


def test_fp32_untrimmed_bits_per_byte_equals_the_reference(
    full_fp32: ConvertResult, tiny_gemma3_dir: Path, prose: Path
) -> None:
    from edgekit.convert import nll

    result = evaluate(full_fp32.artifact.path, tiny_gemma3_dir, text=nll.text_from_file(prose), threads=2)
    g = result.gap
    assert g.same_tokenizer and g.bytes is not None and g.artifact_bits_per_byte is not None
    assert abs(g.artifact_bits_per_byte - g.reference_bits_per_byte) < 1e-3, g  # type: ignore[operator]
    # Bits per byte is the total NLL over the bytes: the mean per token times the tokens.
    assert math.isclose(g.artifact_bits_per_byte * g.bytes * math.log(2), g.artifact_nll * g.tokens, rel_tol=1e-9)
    assert g.artifact_tokens_per_byte == g.reference_tokens_per_byte == g.tokens / g.bytes
    # A byte-level BPE writes Ü, 日本語 and rare words in its one-byte base symbols.
    assert g.artifact_byte_fallback_share is not None and 0.0 < g.artifact_byte_fallback_share < 1.0
    # The manifest's fidelity record carries the same figures for the built-in text.
    rec = full_fp32.artifact.manifest.fidelity.nll  # type: ignore[union-attr]
    assert rec is not None and rec.bytes and abs(rec.artifact_bits_per_byte - rec.reference_bits_per_byte) < 1e-3  # type: ignore[operator]


def test_a_trimmed_artifact_is_compared_with_the_full_model_by_bits_per_byte(
    trimmed_fp32: ConvertResult, tiny_gemma3_dir: Path, prose: Path, tmp_path: Path
) -> None:
    """Against the full model each side scores its own tokens; against the same trim, built here by
    hand in PyTorch from the bundle's tokenizer, the fp32 artifact matches to 1e-3 bits per byte."""
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from edgekit.convert import nll, vocab

    # --no-vocab-fill: exactly the ids the text and the tokenizer need.
    v = trimmed_fp32.artifact.manifest.source.vocab  # type: ignore[union-attr]
    assert v.filled_ids == 0 and v.target_size is None  # type: ignore[union-attr]
    texts = vocab.read_texts([Path(v.texts[0].path)])  # type: ignore[union-attr]
    assert v.kept_ids == len(vocab.select(tiny_gemma3_dir, "gemma3_text", texts, fill=False).kept)  # type: ignore[union-attr]
    text = nll.text_from_file(prose)
    vs_full = evaluate(trimmed_fp32.artifact.path, tiny_gemma3_dir, text=text, threads=2).gap
    assert not vs_full.same_tokenizer
    assert vs_full.bytes is not None and vs_full.reference_tokens is not None
    assert vs_full.tokens > vs_full.reference_tokens  # the trimmed tokenizer writes more, smaller pieces
    assert vs_full.artifact_byte_fallback_share > vs_full.reference_byte_fallback_share  # type: ignore[operator]
    assert math.isclose(
        vs_full.reference_bits_per_byte * vs_full.bytes * math.log(2),  # type: ignore[operator]
        vs_full.reference_nll * vs_full.reference_tokens,
        rel_tol=1e-9,
    )

    trimmed = _bundle_tokenizer(trimmed_fp32.artifact.path, tmp_path / "unpacked")
    kept = _kept_old_ids(trimmed, tiny_gemma3_dir)
    by_hand = tmp_path / "by-hand"
    model = AutoModelForCausalLM.from_pretrained(str(tiny_gemma3_dir), dtype=torch.float32)
    table = model.get_input_embeddings().weight.detach()[torch.tensor(kept)]
    model.resize_token_embeddings(len(kept))
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(table)
    (tmp_path / "tokenizer.json").write_text(json.dumps(trimmed))
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(tmp_path / "tokenizer.json"), bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    model.config.bos_token_id = tok.bos_token_id
    model.config.pad_token_id = tok.pad_token_id
    model.config.eos_token_id = tok.eos_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(str(by_hand))
    tok.save_pretrained(str(by_hand))
    same = evaluate(trimmed_fp32.artifact.path, by_hand, text=text, threads=2).gap
    assert same.tokens == same.reference_tokens == vs_full.tokens
    assert abs(same.artifact_bits_per_byte - same.reference_bits_per_byte) < 1e-3, same  # type: ignore[operator]
    assert abs(same.artifact_bits_per_byte - vs_full.artifact_bits_per_byte) < 1e-6  # type: ignore[operator]


def test_eval_prints_bits_per_byte(trimmed_fp32: ConvertResult, tiny_gemma3_dir: Path, prose: Path) -> None:
    r = run_cli(
        "eval", str(trimmed_fp32.artifact.path), "--reference", str(tiny_gemma3_dir), "--text", str(prose), "--json"
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)["nll"]
    assert got["same_tokenizer"] is False and got["bytes"] > 0
    assert got["artifact_tokens_per_byte"] == pytest.approx(got["tokens"] / got["bytes"])
    assert got["bits_per_byte_gap"] == pytest.approx(got["artifact_bits_per_byte"] - got["reference_bits_per_byte"])
    r = run_cli("eval", str(trimmed_fp32.artifact.path), "--reference", str(tiny_gemma3_dir), "--text", str(prose))
    assert r.returncode == 0, r.stderr
    line = r.stdout.splitlines()[-1]
    assert line.startswith("  bits per byte: artifact ") and "each its own tokenization (trimmed vocabulary)" in line


def test_vocab_size_and_min_count_choose_what_is_kept(tiny_gemma3_dir: Path, app_text: Path) -> None:
    from collections import Counter

    from transformers import AutoTokenizer

    from edgekit.convert import vocab
    from edgekit.errors import InputError

    texts = vocab.read_texts([app_text])
    everything = vocab.select(tiny_gemma3_dir, "gemma3_text", texts, fill=False)
    assert everything.filled == 0 and everything.target_size is None
    target = everything.required + 4
    small = vocab.select(tiny_gemma3_dir, "gemma3_text", texts, target_size=target, fill=False)
    assert everything.required <= len(small.kept) <= target < len(everything.kept)
    assert set(small.kept) < set(everything.kept)
    # The default fills the room the text leaves, up to a quarter of the vocabulary beyond what
    # the tokenizer needs, and keeps every id of the text.
    filled = vocab.select(tiny_gemma3_dir, "gemma3_text", texts)
    assert filled.target_size == filled.required + 512 // 4
    assert set(everything.kept) < set(filled.kept) and len(filled.kept) <= filled.target_size
    assert filled.filled == len(filled.kept) - len(everything.kept) > 0
    tok = AutoTokenizer.from_pretrained(str(tiny_gemma3_dir))
    counts = Counter(
        i for line in APP_TEXT.splitlines(keepends=True) for i in tok(line, add_special_tokens=False)["input_ids"]
    )
    rare = {i for i, n in counts.items() if n < 4}  # every app line occurs 3 times
    frequent = vocab.select(tiny_gemma3_dir, "gemma3_text", texts, min_count=4, fill=False)
    assert set(frequent.kept) < set(everything.kept) and rare - set(frequent.kept)
    with pytest.raises(InputError, match="--vocab-min-count 1000 keeps no id"):
        vocab.select(tiny_gemma3_dir, "gemma3_text", texts, min_count=1000)


def test_the_fill_adds_the_texts_writing_systems_single_letters_then_names_then_the_rest() -> None:
    from collections import Counter

    from edgekit.convert import vocab

    pieces = {
        0: "<pad>",
        5: "\u2581Berlin",
        6: "stadt",
        7: "\u2581\u00fc",
        8: "\u2581der",
        9: "\u043c\u0438\u0440",  # Cyrillic
        10: "\u2581Churchill",
        11: "x",
        12: "\u2581hello",
        13: "\u65e5",  # CJK
    }
    assert vocab.fill_order(pieces, ["LATIN"]) == [7, 11, 5, 10, 6, 8, 12]
    assert vocab.fill_order(pieces, ["CJK", "CYRILLIC"]) == [13, 9]
    # Latin as a second writing system (a Japanese text's English): every word start is a word.
    assert vocab.fill_order(pieces, ["CJK", "LATIN"]) == [7, 11, 13, 5, 8, 10, 12, 6]
    # A writing system counts when 1% or more of the text's letter tokens are in it.
    counts = Counter({5: 60, 8: 39, 9: 1, 0: 500})
    assert vocab._scripts(counts, pieces) == ["LATIN", "CYRILLIC"]
    assert vocab._scripts(Counter({5: 1000, 9: 1}), pieces) == ["LATIN"]
    assert vocab._scripts(Counter({9: 30, 13: 70}), pieces) == ["CJK", "CYRILLIC"]


def _refused(*args: str, out: Path) -> str:
    r = run_cli("convert", *args, "-o", str(out), "--no-verify")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*")), list(out.parent.iterdir())
    return r.stderr


def test_bad_vocab_text_is_one_line_and_nothing_is_written(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.litertlm"
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\n")
    assert f"--vocab-from {empty} is empty" in _refused(str(tiny_gemma3_dir), "--vocab-from", str(empty), out=out)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Grüße aus Köln".encode("latin-1"))
    assert "is not UTF-8 (byte 2)" in _refused(str(tiny_gemma3_dir), "--vocab-from", str(latin1), out=out)
    good = tmp_path / "good.txt"
    good.write_text(APP_TEXT)
    err = _refused(str(tiny_gemma3_dir), "--vocab-from", str(good), "--vocab-size", "50", out=out)
    assert "--vocab-size 50 is below the" in err and "ids the tokenizer and its chat template need" in err
    err = _refused(str(tiny_gemma3_dir), "--vocab-size", "5000", out=out)
    assert "--vocab-size chooses what --vocab-from keeps" in err
    bare = tmp_path / "x.tflite"
    err = _refused(str(tiny_gemma3_dir), "--vocab-from", str(good), out=bare)
    assert "write a .litertlm bundle (a bare .tflite carries no tokenizer)" in err


def test_a_tokenizer_edgekit_cannot_trim_is_named(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.litertlm"
    text = tmp_path / "app.txt"
    text.write_text(APP_TEXT)

    def copy(name: str) -> Path:
        d = tmp_path / name
        shutil.copytree(tiny_gemma3_dir, d)
        return d

    sentencepiece = copy("sentencepiece")
    (sentencepiece / "tokenizer.json").unlink()
    (sentencepiece / "tokenizer.model").write_bytes(b"\x0a\x00")
    err = _refused(str(sentencepiece), "--vocab-from", str(text), out=out)
    assert "has no tokenizer.json (a SentencePiece tokenizer.model alone is not trimmed)" in err

    unigram = copy("unigram")
    data = json.loads((unigram / "tokenizer.json").read_text())
    data["model"] = {"type": "Unigram", "unk_id": 3, "vocab": [[p, 0.0] for p in data["model"]["vocab"]]}
    (unigram / "tokenizer.json").write_text(json.dumps(data))
    err = _refused(str(unigram), "--vocab-from", str(text), out=out)
    assert "it is a Unigram tokenizer and edgekit trims BPE tokenizers (Gemma 3's)" in err

    qwen = copy("qwen")
    config = json.loads((qwen / "config.json").read_text())
    config["model_type"] = "qwen2"
    (qwen / "config.json").write_text(json.dumps(config))
    err = _refused(str(qwen), "--vocab-from", str(text), out=out)
    assert "--vocab-from trims gemma3_text checkpoints" in err and "model_type 'qwen2' is not one" in err
