"""Where INT4 loses quality on the real Gemma 3 270M, and which ids of a split table need 8 bits.

Simulates each recipe's weight rounding in PyTorch (ai-edge-quantizer 0.10's min-max,
symmetric: INT8 per row, scale absmax/127; INT4 blocks of 32, scale absmax/7 rounded to
bf16, codes -8..7), with every linear layer INT8 per channel, and prints the NLL gap vs
fp32 PyTorch on English news (the first six 256-token windows of gensim's
lee_background.cor, first 16 positions of each unscored) and Russian prose (four
128-token windows of gensim's crime-and-punishment.txt). Weights only: no activation
rounding, no engine (the engine's figures: benchmarks/fidelity_floors.py). Rows:

- the whole table INT8 / INT4;
- the table split, the 8-bit half by id order, by edgekit's ranking
  (edgekit.convert.split_table.token_order), and by a ranking from BOS-only samples.

Needs `edgekit example gemma3-270m DIR` first. About 15 minutes on 2 idle cores.

    .venv/bin/python benchmarks/table_split_sim.py DIR
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import torch

from edgekit.convert import split_table
from edgekit.convert.nll import _package_file, _read_text

TABLE = "model.embed_tokens.weight"


def _bf16(s: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(s.numpy().astype(ml_dtypes.bfloat16).astype(np.float16).astype(np.float32))


def fake_quant(w: torch.Tensor, bits: int, block: int) -> torch.Tensor:
    """`w` rounded as ai-edge-quantizer stores it (block 0: one scale per row)."""
    qmax, qmin = 2 ** (bits - 1) - 1, -(2 ** (bits - 1))
    x = w.reshape(w.shape[0], -1, block) if block else w.reshape(w.shape[0], 1, -1)
    scale = x.abs().amax(-1, keepdim=True).clamp_min(1e-9) / qmax
    if block:
        scale = _bf16(scale)
    return (torch.clamp(torch.round(x / scale), qmin, qmax) * scale).reshape(w.shape)


def split(w: torch.Tensor, rows: int, order: torch.Tensor | None) -> torch.Tensor:
    """The table with the first `rows` ids of `order` at INT8 per row, the rest INT4 blocks of 32."""
    idx = torch.arange(w.shape[0]) if order is None else order
    out = torch.empty_like(w)
    out[idx[:rows]] = fake_quant(w[idx[:rows]], 8, 0)
    out[idx[rows:]] = fake_quant(w[idx[rows:]], 4, 32)
    return out


def bos_only_order(model: object, tok: object, vocab: int) -> torch.Tensor:
    """A ranking from 16 x 128 tokens sampled from BOS alone (seed 0): the first idea, English-heavy."""
    from transformers import LogitsProcessor, LogitsProcessorList

    mass = torch.zeros(vocab, dtype=torch.float64)

    class _Mass(LogitsProcessor):  # type: ignore[misc]
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            mass.add_(torch.softmax(scores.double(), -1).sum(0))
            return scores

    torch.manual_seed(0)
    with torch.no_grad():
        model.generate(  # type: ignore[attr-defined]
            torch.full((16, 1), tok.bos_token_id),  # type: ignore[attr-defined]
            do_sample=True,
            top_k=0,
            top_p=1.0,
            temperature=1.0,
            max_new_tokens=128,
            logits_processor=LogitsProcessorList([_Mass()]),
            pad_token_id=0,
        )
    return torch.argsort(-mass)


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    model_dir = Path(sys.argv[1])
    torch.set_num_threads(2)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    en_path, _ = _package_file("lee_background.cor")
    ru_path, _ = _package_file("crime-and-punishment.txt")
    en_ids = tok(_read_text(en_path), add_special_tokens=False)["input_ids"]
    ru_ids = tok(_read_text(ru_path), add_special_tokens=False)["input_ids"]
    bos = tok.bos_token_id
    en = torch.tensor([[bos, *en_ids[i * 256 : (i + 1) * 256 - 1]] for i in range(6)])
    ru = torch.tensor([[bos, *ru_ids[i * 128 : (i + 1) * 128 - 1]] for i in range(4)])

    def nll(x: torch.Tensor) -> float:
        with torch.no_grad():
            logp = torch.log_softmax(model(x).logits[:, :-1].float(), -1)
        return float(-logp.gather(-1, x[:, 1:, None]).squeeze(-1)[:, 16:].mean())

    orig = {n: p.detach().clone() for n, p in model.named_parameters() if p.dim() == 2}
    base = nll(en), nll(ru)
    vocab = orig[TABLE].shape[0]

    def row(name: str, table: torch.Tensor) -> None:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.dim() == 2:
                    p.copy_(table if n == TABLE else fake_quant(orig[n], 8, 0))
        print(f"| {name} | {nll(en) - base[0]:+.3f} | {nll(ru) - base[1]:+.3f} |", flush=True)

    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 2:
                p.copy_(orig[n])
    ranked = split_table.token_order(model_dir)
    bos_only = bos_only_order(model, tok, vocab)
    half = split_table.split_rows(split_table.TableShape(model_type="gemma3_text", vocab_size=vocab)) or vocab // 2
    print(f"Gemma 3 270M ({model_dir}), fake-quant, linear layers INT8 per channel\n")
    print("| 8-bit half of the table | English | Russian |\n|---|---|---|")
    row("whole table INT8", fake_quant(orig[TABLE], 8, 0))
    row(f"ids 0-{half - 1} (id order)", split(orig[TABLE], half, None))
    row(f"{half} ids ranked from BOS-only samples", split(orig[TABLE], half, bos_only))
    row(f"{half} ids ranked by split_table.token_order (int4)", split(orig[TABLE], half, ranked))
    row(f"{half // 2} ids ranked by split_table.token_order", split(orig[TABLE], half // 2, ranked))
    row("whole table INT4 blocks of 32 (int4-table)", fake_quant(orig[TABLE], 4, 32))
    print(f"\nreproduce: {shlex.join([sys.executable, 'benchmarks/table_split_sim.py', *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
