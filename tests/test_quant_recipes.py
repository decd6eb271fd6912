"""The quantization recipes edgekit hands ai-edge-quantizer, and the Q4_0 grid of QAT checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit.convert import Quant
from edgekit.convert.grid import detect_q4_0, on_q4_0_grid, q4_0_codes, snap_to_q4_0
from edgekit.convert.recipes import LM_HEAD_SCOPE
from edgekit.convert.split_table import SCOPE_HIGH_IDS, TableShape, split_rows


def _weights(block: str, bits: int, rule: dict[str, object]) -> bool:
    config = rule["op_config"]["weight_tensor_config"]  # type: ignore[index]
    return bool(config["granularity"] == block and config["num_bits"] == bits)  # type: ignore[index]


def test_int4_on_an_unsplit_table_gives_the_tied_table_one_4bit_rule_and_linear_layers_8bit() -> None:
    assert Quant.INT4.rules() == Quant.INT4_TABLE.rules()
    rules = Quant.INT4.rules()
    assert rules is not None
    fc_all, lm_head, embedding = rules
    # Last match wins: the general FULLY_CONNECTED rule first, the LM head after it.
    assert (fc_all["operation"], fc_all["regex"]) == ("FULLY_CONNECTED", ".*")
    assert _weights("CHANNELWISE", 8, fc_all)
    assert (lm_head["operation"], lm_head["regex"]) == ("FULLY_CONNECTED", LM_HEAD_SCOPE)
    assert embedding["operation"] == "EMBEDDING_LOOKUP"
    # Both readers of the tied table must quantize it identically, or it is stored twice.
    assert lm_head["op_config"] == embedding["op_config"]
    assert lm_head["algorithm_key"] == embedding["algorithm_key"] == "min_max_uniform_quantize"
    assert _weights("BLOCKWISE_32", 4, embedding)
    assert Quant.INT4.recipe_name == "edgekit_table_wi4b32_linear_wi8_afp32"


@pytest.mark.parametrize(
    ("quant", "upstream"),
    [
        (Quant.INT4_B32, "dynamic_wi4b32_afp32"),
        (Quant.INT4_B64, "dynamic_wi4b64_afp32"),
        (Quant.INT4_CHANNEL, "dynamic_wi4_afp32"),
        (Quant.INT8, "dynamic_wi8_afp32"),
    ],
)
def test_named_upstream_recipes_are_exactly_upstreams(quant: Quant, upstream: str) -> None:
    from ai_edge_quantizer import recipe

    assert quant.recipe_name == upstream
    expected = json.loads(json.dumps(getattr(recipe, upstream)(), default=str))
    assert quant.rules() == expected


def test_every_recipe_loads_in_ai_edge_quantizer() -> None:
    from ai_edge_quantizer import recipe_manager

    for quant in Quant:
        for recover, split in ((False, None), (True, None), (False, 256), (True, 256)):
            rules = quant.rules(recover_grid=recover, split_rows=split)
            if rules is None:
                assert quant is Quant.FP32
                continue
            manager = recipe_manager.RecipeManager()
            manager.load_quantization_recipe(rules)
            # The manager groups rules by regex; it must keep every one of ours, unchanged.
            loaded = manager.get_quantization_recipe()
            assert sorted(map(json.dumps, loaded)) == sorted(map(json.dumps, rules))


def test_grid_recovery_switches_only_the_4bit_block32_rules() -> None:
    plain, kept = Quant.INT4.rules(), Quant.INT4.rules(recover_grid=True)
    assert plain is not None and kept is not None
    assert kept[0] == plain[0]  # 8-bit linear layers: unchanged
    for rule in kept[1:]:
        assert rule["algorithm_key"] == "dequantized_weight_recovery"
        assert rule["op_config"]["skip_checks"] is True
    assert Quant.INT4.recipe_name_for(recover_grid=True) == "edgekit_table_wi4b32_linear_wi8_afp32+q4_0_grid_recovery"
    assert Quant.INT8.rules(recover_grid=True) == Quant.INT8.rules()
    assert not Quant.INT8.can_recover_grid and not Quant.INT4_B64.can_recover_grid
    assert Quant.INT4_B32.can_recover_grid


def test_snapped_weights_are_on_the_q4_0_grid_and_trained_ones_are_not() -> None:
    rng = torch.Generator().manual_seed(0)
    w = torch.randn(48, 96, generator=rng) * 0.02
    snapped = snap_to_q4_0(w)
    assert on_q4_0_grid(snapped)[0]
    assert not on_q4_0_grid(w)[0]
    assert torch.equal(snap_to_q4_0(snapped), snapped)  # idempotent
    _, codes = q4_0_codes(snapped)
    assert codes.round().min() >= -8 and codes.round().max() <= 7
    # Q4_0's sign convention: scale = signed absmax / -8, so the absmax value gets code -8.
    assert bool((codes.round().min(dim=-1).values == -8).all())
    _, blocks, negative = on_q4_0_grid(snapped)
    assert blocks == 48 * 3 and 0 < negative < blocks


def test_dequantized_weight_recovery_keeps_the_grid_except_the_plus_8_codes() -> None:
    """ai-edge-quantizer's own recovery on snapped weights: exact where INT4 can hold Q4_0."""
    from ai_edge_quantizer.algorithms.uniform_quantize import dequantized_weight_recovery as dwr
    from ai_edge_quantizer.algorithms.uniform_quantize import uniform_quantize_tensor as uqt
    from ai_edge_quantizer.qtyping import UniformQuantParams

    rng = torch.Generator().manual_seed(1)
    snapped = snap_to_q4_0(torch.randn(64, 128, generator=rng) * 0.02)
    values = snapped.numpy()
    zp, scale = dwr.get_zp_scale_from_dequantized_symmetric_weights(values, quantized_dimension=1, block_size=32)
    params = UniformQuantParams(
        num_bits=4, quantized_dimension=1, scale=scale, zero_point=zp, symmetric=True, block_size=32
    )
    codes = uqt.uniform_quantize(values, params, is_blockwise_quant=True)
    back = uqt.uniform_dequantize(codes, params)
    q4_scale, _ = q4_0_codes(snapped)
    abs_scale = np.abs(q4_scale.numpy()).repeat(32, axis=1).reshape(64, 128)
    plus_8 = (np.round(values / abs_scale) == 8).reshape(64, 128)
    exact = np.isclose(back, values, rtol=0, atol=1e-7)
    # Every value comes back exactly but those at +8 x |scale| (only in blocks whose Q4_0
    # scale is negative): INT4 stops at +7.
    assert plus_8.any() and (exact == ~plus_8).all()
    assert bool((q4_scale.numpy().repeat(32, axis=1).reshape(64, 128)[plus_8] < 0).all())
    assert np.allclose((values - back)[plus_8], abs_scale[plus_8])


def test_detect_q4_0_on_the_tiny_model_and_its_qat_like_copy(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    from edgekit.testing.qat import write_qat_like

    assert not detect_q4_0(tiny_gemma3_dir).detected
    qat = write_qat_like(tiny_gemma3_dir, tmp_path / "qat")
    report = detect_q4_0(qat)
    assert report.detected and not report.off_grid
    assert "model.embed_tokens.weight" in report.on_grid
    assert report.record().detected is True
    assert sorted(p.name for p in qat.iterdir()) == sorted(p.name for p in tiny_gemma3_dir.iterdir())


def test_int4_on_a_split_table_gives_the_rare_half_4bit_and_everything_else_8bit() -> None:
    rules = Quant.INT4.rules(split_rows=131072)
    assert rules is not None
    fc_all, lookup_all, fc_high, lookup_high = rules
    assert [(r["operation"], r["regex"]) for r in rules] == [
        ("FULLY_CONNECTED", ".*"),
        ("EMBEDDING_LOOKUP", ".*"),
        ("FULLY_CONNECTED", SCOPE_HIGH_IDS),
        ("EMBEDDING_LOOKUP", SCOPE_HIGH_IDS),
    ]
    # Each half is read by one lookup and one projection: identical rules, or it is stored twice.
    assert fc_all["op_config"] == lookup_all["op_config"] and _weights("CHANNELWISE", 8, fc_all)
    assert fc_high["op_config"] == lookup_high["op_config"] and _weights("BLOCKWISE_32", 4, fc_high)
    assert Quant.INT4.recipe_name_for(split_rows=131072) == "edgekit_split_table_wi8_wi4b32_linear_wi8_afp32"
    assert "the 131,072 ids the model uses most" in Quant.INT4.description_for(131072)
    # Only int4 splits: every other recipe ignores the split.
    for quant in Quant:
        if quant is not Quant.INT4:
            assert quant.rules(split_rows=131072) == quant.rules()
    # A QAT checkpoint: the 4-bit half keeps its grid, the 8-bit rules stay min-max.
    kept = Quant.INT4.rules(recover_grid=True, split_rows=131072)
    assert kept is not None
    assert [r["algorithm_key"] for r in kept] == ["min_max_uniform_quantize"] * 2 + ["dequantized_weight_recovery"] * 2


@pytest.mark.parametrize(
    ("shape", "rows"),
    [
        (TableShape(model_type="gemma3_text", vocab_size=262144, tie_word_embeddings=True), 131072),
        (TableShape(model_type="gemma3_text", vocab_size=512), 256),
        (TableShape(model_type="gemma3_text", vocab_size=1000), 480),
        (TableShape(model_type="gemma3_text", vocab_size=262144, tie_word_embeddings=False), None),
        (TableShape(model_type="qwen3", vocab_size=151936, tie_word_embeddings=True), None),
        (TableShape(model_type="gemma3_text", vocab_size=32), None),
        (TableShape(model_type="gemma3_text", vocab_size=None), None),
    ],
)
def test_split_rows_halves_a_tied_gemma3_table_only(shape: TableShape, rows: int | None) -> None:
    assert split_rows(shape) == rows


@pytest.mark.parametrize(
    ("config", "shape"),
    [
        (
            {"model_type": "gemma3_text", "vocab_size": 512, "tie_word_embeddings": False, "hidden_size": 64},
            TableShape(model_type="gemma3_text", vocab_size=512, tie_word_embeddings=False),
        ),
        ({"model_type": "gemma3_text", "vocab_size": 512}, TableShape(model_type="gemma3_text", vocab_size=512)),
        (
            {"vocab_size": "512", "tie_word_embeddings": None},
            TableShape(model_type=None, vocab_size=None, tie_word_embeddings=False),
        ),
    ],
)
def test_the_table_shape_is_read_from_config_json(tmp_path: Path, config: dict[str, object], shape: TableShape) -> None:
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert TableShape.read(tmp_path) == shape


@pytest.mark.parametrize(
    ("kept", "text_ids", "original", "rows"),
    [
        (65934, 45982, 262144, 46016),  # the German default trim: the text's ids (+32, rounded) at 8 bits
        (65934, 37747, 262144, 37792),  # the Japanese one
        (65934, 65000, 262144, 49440),  # a text that uses nearly every kept id: three quarters
        (65934, None, 262144, 49440),  # trimmed before the text's ids were recorded: three quarters
        (48578, None, 262144, 36416),
        (200000, 190000, 262144, 131072),  # more than the default's 8-bit half: that half's size
        (400, None, 512, 256),
        (300, 100, 512, 160),
        (150, None, 512, 96),
    ],
)
def test_a_trimmed_vocabulary_keeps_its_texts_ids_at_8_bits(
    kept: int, text_ids: int | None, original: int, rows: int
) -> None:
    shape = TableShape(model_type="gemma3_text", vocab_size=kept)
    assert split_rows(shape, original_vocab_size=original, text_ids=text_ids) == rows
    assert split_rows(shape) == kept // 2 // 32 * 32  # untrimmed: half, as before


@pytest.mark.parametrize("shuffled", [False, True])
def test_the_split_model_computes_exactly_what_the_original_does(
    tiny_gemma3_dir: Path, tmp_path: Path, shuffled: bool
) -> None:
    """The split checkpoint, loaded through the class litert-torch is given, equals the original bit for bit."""
    from transformers import AutoModelForCausalLM

    from edgekit.convert import split_table

    rows = split_rows(TableShape.read(tiny_gemma3_dir))
    assert rows is not None
    original = AutoModelForCausalLM.from_pretrained(str(tiny_gemma3_dir), dtype=torch.float32).eval()
    table = original.model.embed_tokens.weight
    vocab = table.shape[0]
    order = torch.randperm(vocab, generator=torch.Generator().manual_seed(3)) if shuffled else torch.arange(vocab)
    split_dir = split_table.write_checkpoint(tiny_gemma3_dir, tmp_path / "split", rows, order)
    model_class = split_table._model_class()
    split = model_class.from_pretrained(str(split_dir), dtype=torch.float32).eval()
    low, high = split.model.embed_tokens.halves()
    assert torch.equal(low.weight, table[order[:rows]]) and torch.equal(high.weight, table[order[rows:]])
    # Ids in both halves, the first and last rows of each included.
    edge = [int(order[i]) for i in (0, rows - 1, rows, vocab - 1)]
    ids = torch.tensor([[2, *edge, 7, int(order[rows + 3]), 11]])
    with torch.no_grad():
        want, got = original(ids).logits, split(ids).logits
    assert got.shape == want.shape == (1, ids.shape[1], vocab)
    assert torch.equal(got, want)
    assert "lm_head.weight" not in dict(split.named_parameters())  # tied by construction, stored once


def test_script_seeds_pick_one_frequent_piece_per_writing_system_with_the_most_pieces() -> None:
    from edgekit.convert.split_table import script_seeds

    pieces: list[str | None] = [
        "<pad>",
        "▁про",  # 1: Cyrillic word start
        "▁the",  # 2: Latin word start
        "ing",  # 3: Latin, not a word start (counts all the same)
        "▁και",  # 4: Greek
        "▁and",  # 5: Latin
        "▁of",  # 6: Latin
        "▁что",  # 7: Cyrillic
        "▁123",  # not a letter
        None,
        "▁для",  # 10: Cyrillic
        "一个",  # 11: CJK, written without spaces: its pieces seldom start a word
        "中国",  # 12
        "的",  # 13: one letter
        "人",  # 14
        "日本",  # 15
    ]
    # CJK has 5 pieces, Latin 4, Cyrillic 3, Greek 1 (counting only word starts of 3+ letters
    # left Chinese out of Gemma 3's 16 systems). Seeds: the lowest word start of 2+ letters, or
    # for a system written without spaces the lowest piece of 2+ letters.
    assert script_seeds(pieces) == [11, 2, 1, 4]
    assert script_seeds(pieces, scripts=2) == [11, 2]


def test_calibration_text_puts_the_ids_it_uses_in_the_8bit_half(tiny_gemma3_dir: Path) -> None:
    """--calibration-text: the ids the app's own text reads or the model predicts there rank
    right after the special tokens, ahead of the model's own samples."""
    from transformers import AutoTokenizer

    from edgekit.convert.split_table import token_order

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_gemma3_dir))
    text = "abc xyz " * 40
    used = set(tokenizer(text, add_special_tokens=False)["input_ids"])
    plain = token_order(tiny_gemma3_dir)
    steered = token_order(tiny_gemma3_dir, calibration=[text])
    assert sorted(steered.tolist()) == list(range(512))
    special = {int(i) for i in tokenizer.all_special_ids}
    first = set(steered[: len(special) + len(used) + 8].tolist())
    assert used <= first
    # Without the text they are not all there: the text is what moved them.
    assert not used <= set(plain[: len(special) + len(used) + 8].tolist())


def test_the_shipped_multilingual_ranking_is_for_gemma3s_vocabulary_only() -> None:
    """converters/gemma3-table-ranking.npz (benchmarks/table_ranking.py) applies to the vocabulary
    it was made for; any other tokenizer falls back to the model's own samples."""
    import numpy as np

    from edgekit._data import data_dir
    from edgekit.convert.split_table import RANKING_FILE, shipped_mass, vocab_sha256

    with np.load(data_dir("converters") / RANKING_FILE) as data:
        mass, digest = data["mass"], str(data["vocab_sha256"])
    assert mass.shape == (262_144,) and np.isfinite(mass).all() and (mass >= 0).all() and mass.sum() > 0
    assert len(digest) == 64
    assert shipped_mass(["<pad>", "a", "b"]) is None
    assert vocab_sha256(["a", "b"]) != vocab_sha256(["b", "a"])
