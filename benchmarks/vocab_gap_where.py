"""Where a trimmed artifact's bits per byte go: its vocabulary or its quantization, window by window.

Scores HELD_OUT (not in the trim's --vocab-from text) as `edgekit eval` does — the same
windows, cut by each artifact's own tokenizer, scored exactly by the LiteRT-LM engine — for
DEFAULT (the same model's full-vocabulary artifact) and TRIM (`--vocab-from`), and the same
windows in fp32 PyTorch: the full model on the default's ids, and on the trim's ids (mapped
back to the model's) with the softmax over the kept ids only, as a trimmed table computes it.
Then:

- engine gap (trim − default) and fp32 gap (the vocabulary alone); the quantization's cost
  of each artifact (engine − its fp32);
- the windows whose text the trim tokenizes as the default does (their gap is the kept
  softmax's alone) and those it writes in other pieces, with the pieces it lacks and what
  each such window costs.

The kept ids are recomputed from the trim's manifest (its --vocab-from files, min count,
target size and fill; checked against the manifest's sha256).

    .venv/bin/python benchmarks/vocab_gap_where.py ./gemma3-270m default.litertlm trim.litertlm HELD.txt \\
        [--max-tokens 4096]
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgekit.convert import nll, vocab
from edgekit.convert.windows import TokenWindow, context_room, split_windows, tokenize_windows
from edgekit.engine import open_engine, quiet_engine_logs


def _windows(artifact: Path, text: nll.EvalText, max_tokens: int) -> tuple[list[TokenWindow], list[np.ndarray]]:
    settings = json.loads(Path(f"{artifact}.json").read_text())["settings"]
    cache = int(settings["cache_length"]["value"])
    with open_engine(artifact, threads=2) as engine:
        windows = tokenize_windows(
            split_windows(text.documents),
            engine.tokenize,
            max_tokens=max_tokens,
            max_window_tokens=min(512, cache),
            max_context_tokens=context_room(cache, settings["prefill_lengths"]["value"]),
            round_trips=lambda i: list(engine.tokenize(engine.detokenize([i]))) == [i],
        )
        scores = nll.engine_nll(engine, windows, nll.detect_scoring(engine, windows))
    return windows, scores


def _kept(model_dir: Path, trim: Path) -> list[int]:
    record: dict[str, Any] = json.loads(Path(f"{trim}.json").read_text())["source"]["vocab"]
    texts = vocab.read_texts([Path(t["path"]) for t in record["texts"]])
    got = vocab.select(
        model_dir,
        "gemma3_text",
        texts,
        min_count=int(record["min_count"]),
        target_size=record.get("target_size"),
        fill=bool(record.get("filled_ids")),
    )
    if got.kept_sha256 != record["kept_ids_sha256"]:
        raise SystemExit(f"the kept ids of {trim} cannot be recomputed from its manifest (other code or texts)")
    return list(got.kept)


@torch.no_grad()
def _fp32_kept(model: Any, bos: int, windows: list[TokenWindow], kept: list[int]) -> list[np.ndarray]:
    """nll.reference_nll for a trim's windows: its ids mapped back to the model's, the softmax over the kept ids."""
    mask = torch.full((int(model.config.vocab_size),), float("-inf"), dtype=torch.float64)
    mask[torch.tensor(kept)] = 0
    out = []
    for w in windows:
        ctx, cont = [kept[i] for i in w.context_ids], [kept[i] for i in w.continuation_ids]
        logits = model(torch.tensor([[bos, *ctx, *cont]]), use_cache=False).logits[0, -len(cont) - 1 : -1]
        logp = torch.log_softmax(torch.log_softmax(logits.double(), -1) + mask, -1)
        out.append(-logp.gather(1, torch.tensor(cont)[:, None])[:, 0].numpy())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("default", type=Path)
    parser.add_argument("trim", type=Path)
    parser.add_argument("held_out", type=Path)
    parser.add_argument("--max-tokens", type=int, default=4096)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    quiet_engine_logs()  # a program of its own, as edgekit's CLI
    kept = _kept(args.model, args.trim)
    text = nll.text_from_file(args.held_out)
    wd, ed = _windows(args.default, text, args.max_tokens)
    wt, et = _windows(args.trim, text, args.max_tokens)
    if [w.continuation for w in wd] != [w.continuation for w in wt]:
        raise SystemExit("the two artifacts cut the text into different windows: compare them with edgekit eval")
    model = AutoModelForCausalLM.from_pretrained(str(args.model), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    bos = int(model.config.bos_token_id)
    fd, ft = nll.reference_nll(model, bos, wd), _fp32_kept(model, bos, wt, kept)
    n_bytes = sum(len(w.continuation.encode("utf-8")) for w in wd)

    def bpb(scores: list[np.ndarray], only: list[int] | None = None) -> float:
        idx = range(len(scores)) if only is None else only
        return sum(float(scores[i].sum()) for i in idx) / n_bytes / math.log(2)

    print(
        f"{args.held_out.name}: {n_bytes} bytes, {len(wd)} windows; bits/byte engine default {bpb(ed):.4f} "
        f"trim {bpb(et):.4f} (gap {bpb(et) - bpb(ed):+.4f}); fp32 full {bpb(fd):.4f} trim {bpb(ft):.4f} "
        f"(gap {bpb(ft) - bpb(fd):+.4f}); quantization's cost default {bpb(ed) - bpb(fd):+.4f} "
        f"trim {bpb(et) - bpb(ft):+.4f}"
    )
    kept_set = set(kept)
    same = [
        i
        for i, (a, b) in enumerate(zip(wd, wt, strict=True))
        if tuple(kept[j] for j in b.continuation_ids) == a.continuation_ids
    ]
    other = [i for i in range(len(wd)) if i not in same]
    for name, idx in (("tokenized as by the full vocabulary", same), ("written in other pieces", other)):
        print(
            f"  {len(idx)} windows {name}: engine gap {bpb(et, idx) - bpb(ed, idx):+.4f}, "
            f"fp32 gap {bpb(ft, idx) - bpb(fd, idx):+.4f} (bits per byte of the whole text)"
        )
    rows = sorted(
        (
            (
                float(et[i].sum() - ed[i].sum()),
                float(ft[i].sum() - fd[i].sum()),
                tokenizer.convert_ids_to_tokens([x for x in wd[i].continuation_ids if x not in kept_set]),
            )
            for i in other
        ),
        reverse=True,
    )
    for engine_nats, fp32_nats, missing in rows:
        print(f"    engine {engine_nats:+7.2f} fp32 {fp32_nats:+7.2f} nats; pieces the trim lacks: {' '.join(missing)}")
    print("reproduce: " + shlex.join([sys.executable, *sys.argv]))


if __name__ == "__main__":
    main()
