"""What each LiteRT approximation costs a QAT checkpoint (weights on the Q4_0 grid).

Simulates in PyTorch, on a QAT-like copy of the real Gemma 3 270M (edgekit.testing.qat),
the roundings an edgekit artifact applies, and prints the NLL gap of each against the
QAT checkpoint itself on the built-in "report" text (edgekit.convert.nll, 1024 tokens,
PyTorch only: the engine's own position bug, benchmarks/engine_floor.py, comes on top):

- clip +8: LiteRT's INT4 has positive scales and codes -8..7 (edgekit.convert.grid), so
  a Q4_0 block with a negative scale loses its largest value (code +8 -> +7), as
  DEQUANTIZED_WEIGHT_RECOVERY leaves it; on every weight, the table only, the linear
  layers only;
- INT8 per channel (ai-edge-quantizer's min-max, scale absmax/127) on the linear layers;
- dynamic activation quantization: XNNPACK's qd8 kernels quantize each row of a fully
  connected layer's input to int8 (asymmetric, per row) at run time;
- edgekit's int4 on this checkpoint: linear INT8, the table split (edgekit.convert.split_table)
  with the ids the model uses most INT8 per row and the rest 4-bit recovered (clip +8).

    .venv/bin/python benchmarks/qat_sim.py MODEL_DIR [QAT_DIR]

MODEL_DIR: `edgekit example gemma3-270m DIR`; QAT_DIR (made from it when missing). About
5 minutes on 2 cores.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from table_split_sim import fake_quant  # run as a script: benchmarks/ is on sys.path

from edgekit.convert import nll
from edgekit.convert.grid import gridded_weights, q4_0_codes
from edgekit.convert.pipeline import load_reference
from edgekit.convert.split_table import TableShape, split_rows, token_order
from edgekit.convert.windows import split_windows, tokenize_windows
from edgekit.testing.qat import write_qat_like

TABLE = "model.embed_tokens.weight"
Fn = Callable[[torch.Tensor], torch.Tensor]


def clip8(w: torch.Tensor) -> torch.Tensor:
    """`w` (on the Q4_0 grid) as positive-scale INT4 holds it: code +8 of a negative-scale block -> +7."""
    scale, codes = q4_0_codes(w)
    flipped = torch.where(scale < 0, -codes.round(), codes.round()).clamp(-8, 7)
    return (flipped * scale.abs()).reshape(w.shape)


def int8_rows(w: torch.Tensor) -> torch.Tensor:
    """`w` as ai-edge-quantizer stores it at INT8 per row (table_split_sim's rounding)."""
    return fake_quant(w, 8, 0)


def int8_activation(x: torch.Tensor) -> torch.Tensor:
    """x rounded as XNNPACK's dynamic (qd8) quantization does: int8 per row, asymmetric."""
    low = x.amin(-1, keepdim=True).clamp(max=0)
    high = x.amax(-1, keepdim=True).clamp(min=0)
    scale = ((high - low) / 255).clamp_min(1e-12)
    zero = torch.round(-low / scale) - 128
    return (torch.clamp(torch.round(x / scale) + zero, -128, 127) - zero) * scale


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    source = Path(sys.argv[1])
    qat_dir = Path(sys.argv[2]) if len(sys.argv) == 3 else source.parent / (source.name + "-qat")
    if not (qat_dir / "config.json").is_file():
        print(f"writing the QAT-like checkpoint to {qat_dir} …", flush=True)
        write_qat_like(source, qat_dir)
    torch.set_num_threads(2)
    model, tokenizer = load_reference(qat_dir)
    windows = tokenize_windows(
        split_windows(nll.builtin_text(nll.Section.REPORT).documents),
        lambda s: tokenizer(s, add_special_tokens=False)["input_ids"],
        max_tokens=nll.DEFAULT_MAX_TOKENS,
        max_window_tokens=512,
    )
    bos = tokenizer.bos_token_id
    reference = np.concatenate(nll.reference_nll(model, bos, windows))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    linear = [n for n in gridded_weights(shapes) if n not in (TABLE, "lm_head.weight")]
    order = token_order(qat_dir)
    c = model.config
    shape = TableShape(model_type=c.model_type, vocab_size=c.vocab_size, tie_word_embeddings=c.tie_word_embeddings)
    rows = split_rows(shape) or c.vocab_size // 2

    def split_table(w: torch.Tensor) -> torch.Tensor:
        out = w.clone()
        out[order[:rows]] = int8_rows(w[order[:rows]])
        out[order[rows:]] = clip8(w[order[rows:]])
        return out

    def row(label: str, table: Fn | None = None, lin: Fn | None = None, act: bool = False) -> None:
        start = time.monotonic()
        weights = {k: v.clone() for k, v in state.items()}
        for name in linear:
            if lin is not None:
                weights[name] = lin(weights[name])
        if table is not None:
            weights[TABLE] = table(weights[TABLE])
            weights["lm_head.weight"] = weights[TABLE]
        model.load_state_dict(weights, strict=False)
        hooks = [
            m.register_forward_pre_hook(lambda _m, args: (int8_activation(args[0]),))
            for m in model.modules()
            if act and isinstance(m, torch.nn.Linear)
        ]
        got = np.concatenate(nll.reference_nll(model, bos, windows))
        for h in hooks:
            h.remove()
        d = got - reference
        spent = time.monotonic() - start
        print(f"{label:58s} {d.mean():+.4f} ±{d.std() / np.sqrt(d.size):.4f}  ({spent:.0f} s)", flush=True)

    print(f"NLL gap vs the QAT checkpoint itself, {reference.size} tokens (PyTorch, weights and activations simulated)")
    row("clip +8, every weight (all-INT4 recovered)", table=clip8, lin=clip8)
    row("clip +8, table only", table=clip8)
    row("clip +8, linear layers only", lin=clip8)
    row("linear INT8 per channel", lin=int8_rows)
    row("dynamic int8 activations only", act=True)
    row("linear INT8 + dynamic int8 activations", lin=int8_rows, act=True)
    row("edgekit int4 (split table, linear INT8), weights only", table=split_table, lin=int8_rows)
    row("edgekit int4 (split table, linear INT8) + activations", table=split_table, lin=int8_rows, act=True)
    print("reproduce: " + shlex.join([sys.executable, "benchmarks/qat_sim.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
