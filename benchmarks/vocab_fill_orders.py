"""Which pieces should fill a trimmed table's room? Orders compared on held-out text, in fp32.

For `--vocab-from CORPUS`, the ids the corpus uses are kept; the room up to the default
target (vocab.select: a quarter of the vocabulary beyond what the tokenizer needs) is filled
in one of these orders:

- none: the corpus's ids only (`--no-vocab-fill`);
- edgekit: vocab.fill_order (single letters; capitalized word starts, and in the writing
  systems after the corpus's main one every word start and capitalized piece; the rest;
  each by id) — what `convert` does;
- capitals: the same but capitalized word starts only, in every writing system (edgekit's
  order until 2026-12-07);
- word-starts: the same but every word start, in every writing system;
- mass-corpus: by the probability the fp32 model gives each id over POSITIONS positions of
  the corpus (windows of 256 tokens after BOS, seeded);
- mass-own: by the probability it gives each id while writing 192 tokens (temperature 1,
  seeded) after each of 64 openings of the corpus's paragraphs.

Each kept set is scored on every HELD_OUT text (not in the corpus) by the fp32 PyTorch
model over its kept ids only (the output softmax renormalized over them, as a trimmed table
computes it), the text tokenized by the trimmed tokenizer, in chunks of about 3,000
characters after BOS; bits per byte against the full vocabulary's on the same chunks.
Engine figures of the converted artifacts are benchmarks/vocab_frontier.py's.

    .venv/bin/python benchmarks/vocab_fill_orders.py ./gemma3-270m de-wide.txt HELD.txt [HELD2.txt] \\
        [--orders none,edgekit,capitals,word-starts,mass-corpus,mass-own] [--min-counts 2,3] [--sizes 80000]
        [--json OUT]

`--min-counts N,…` adds, for each N, edgekit's order over the corpus's ids seen at least N
times (`--vocab-min-count N`), filled to the same target: rare ids of the corpus give their
room to the fill. `--sizes N,…` adds, for each N, edgekit's order filled to N ids in all
(`--vocab-size N`) instead of the default target.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import sys
import time
from pathlib import Path

import torch

from edgekit.convert import vocab

POSITIONS = 8192
SEED = 0
ORDERS = ("none", "edgekit", "capitals", "word-starts", "mass-corpus", "mass-own")


def _word_order(pieces: dict[int, str], scripts: list[str], *, lowercase: bool) -> list[int]:
    """vocab.fill_order's groups with another middle one: capitalized word starts (`lowercase`
    False) or every word start (True), the same in every writing system."""
    from edgekit.convert.split_table import piece_script

    groups: tuple[list[int], list[int], list[int]] = ([], [], [])
    for i in sorted(pieces):
        piece = pieces[i]
        if piece_script(piece) not in scripts:
            continue
        letters = piece.lstrip("\u2581")
        word = piece.startswith("\u2581") and (lowercase or letters[0].isupper())
        groups[0 if len(letters) == 1 else 1 if word else 2].append(i)
    return [*groups[0], *groups[1], *groups[2]]


def _chunks(text: str, size: int = 3000) -> list[str]:
    out, cur = [], ""
    for p in text.split("\n\n"):
        if cur and len(cur) + len(p) > size:
            out.append(cur)
            cur = ""
        cur = cur + ("\n\n" if cur else "") + p
    return [*out, cur] if cur else out


class _Scorer:
    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer
        from transformers import AutoModelForCausalLM

        self.data = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self.vocab = int(self.model.config.vocab_size)
        self.bos = int(self.model.config.bos_token_id)

    @torch.no_grad()
    def bits_per_byte(self, text: str, kept: list[int] | None) -> tuple[float, int]:
        """(bits per byte, tokens) of `text` over the `kept` ids (None: the full vocabulary)."""
        from tokenizers import Tokenizer

        tok, back, mask = self.tok, None, None
        if kept is not None:
            new = {old: i for i, old in enumerate(kept)}
            tok = Tokenizer.from_str(json.dumps(vocab._trimmed_tokenizer(self.data, new)))
            back = torch.tensor(kept)
            mask = torch.full((self.vocab,), float("-inf"), dtype=torch.float64)
            mask[back] = 0
        nats, nbytes, tokens = 0.0, 0, 0
        for chunk in _chunks(text):
            ids = tok.encode(chunk, add_special_tokens=True).ids
            if back is not None:
                ids = back[torch.tensor(ids)].tolist()
            logp = torch.log_softmax(self.model(torch.tensor([ids])).logits[0].double(), -1)
            if mask is not None:
                logp = torch.log_softmax(logp + mask, -1)
            nats -= float(logp[:-1].gather(1, torch.tensor(ids[1:])[:, None]).sum())
            nbytes += len(chunk.encode())
            tokens += len(ids) - 1
        return nats / nbytes / math.log(2), tokens

    @torch.no_grad()
    def mass_corpus(self, text: str) -> torch.Tensor:
        ids: list[int] = []
        for chunk in _chunks(text, 2000):
            ids += self.tok.encode(chunk, add_special_tokens=False).ids
        rng, acc, n = random.Random(SEED), torch.zeros(self.vocab, dtype=torch.float64), 0
        while n < POSITIONS:
            s = rng.randrange(0, len(ids) - 256)
            logits = self.model(torch.tensor([[self.bos, *ids[s : s + 256]]])).logits[0, 1:]
            acc += torch.softmax(logits.double(), -1).sum(0)
            n += 256
        return acc

    @torch.no_grad()
    def mass_own(self, text: str) -> torch.Tensor:
        from transformers import LogitsProcessor, LogitsProcessorList

        acc = torch.zeros(self.vocab, dtype=torch.float64)

        class _Mass(LogitsProcessor):  # type: ignore[misc]
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
                acc.add_(torch.softmax(scores.double(), -1).sum(0))
                return scores

        paragraphs = [p for p in text.split("\n\n") if len(p) > 200]
        rng = random.Random(SEED)
        for r in range(2):
            starts = [self.tok.encode(rng.choice(paragraphs), add_special_tokens=False).ids[:8] for _ in range(32)]
            x = torch.tensor([[self.bos, *s] for s in starts])
            torch.manual_seed(SEED + r)
            self.model.generate(
                x,
                attention_mask=torch.ones_like(x),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=192,
                logits_processor=LogitsProcessorList([_Mass()]),
                pad_token_id=0,
            )
        return acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("held_out", type=Path, nargs="+")
    parser.add_argument("--orders", default=",".join(ORDERS), help="comma-separated, of: " + ", ".join(ORDERS))
    parser.add_argument("--min-counts", default="", help="comma-separated --vocab-min-count values for edgekit's order")
    parser.add_argument("--sizes", default="", help="comma-separated --vocab-size values for edgekit's order")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    orders = args.orders.split(",")
    if set(orders) - set(ORDERS):
        parser.error(
            f"unknown order(s) {', '.join(sorted(set(orders) - set(ORDERS)))}: choose from {', '.join(ORDERS)}"
        )
    texts = vocab.read_texts([args.corpus])
    scorer = _Scorer(args.model)
    kept: dict[str, list[int] | None] = {"full": None}
    if "none" in orders:
        kept["none"] = list(vocab.select(args.model, "gemma3_text", texts, fill=False).kept)
    if "edgekit" in orders:
        kept["edgekit"] = list(vocab.select(args.model, "gemma3_text", texts).kept)
    for n in (int(x) for x in args.min_counts.split(",") if x):
        trim = vocab.select(args.model, "gemma3_text", texts, min_count=n)
        kept[f"edgekit-min{n}"] = list(trim.kept)
        print(f"edgekit-min{n}: {trim.filled} filled, {len(trim.kept)} kept", flush=True)
    for n in (int(x) for x in args.sizes.split(",") if x):
        trim = vocab.select(args.model, "gemma3_text", texts, target_size=n)
        kept[f"edgekit-{n}"] = list(trim.kept)
        print(f"edgekit-{n}: {trim.filled} filled, {len(trim.kept)} kept", flush=True)
    if {"capitals", "word-starts"} & set(orders):
        from transformers import AutoTokenizer

        pieces = {i: p for p, i in scorer.data["model"]["vocab"].items()}
        scripts = vocab._scripts(vocab._count(AutoTokenizer.from_pretrained(str(args.model)), texts), pieces)
        for name in ("capitals", "word-starts"):
            if name in orders:
                order = _word_order(pieces, scripts, lowercase=name == "word-starts")
                kept[name] = list(vocab.select(args.model, "gemma3_text", texts, fill_ids=order).kept)
    corpus = args.corpus.read_text(encoding="utf-8")
    for name, mass in (("mass-corpus", scorer.mass_corpus), ("mass-own", scorer.mass_own)):
        if name not in orders:
            continue
        t0 = time.time()
        order = torch.argsort(mass(corpus), descending=True).tolist()
        kept[name] = list(vocab.select(args.model, "gemma3_text", texts, fill_ids=order).kept)
        print(f"{name}: ranked in {time.time() - t0:.0f} s", flush=True)
    rows: dict[str, dict[str, object]] = {}
    for text_path in args.held_out:
        text = text_path.read_text(encoding="utf-8")
        full, full_tokens = scorer.bits_per_byte(text, None)
        for name, ids in kept.items():
            bpb, tokens = (full, full_tokens) if ids is None else scorer.bits_per_byte(text, ids)
            row = {"ids": len(ids) if ids else scorer.vocab, "bpb": bpb, "gap": bpb - full, "tokens": tokens}
            rows[f"{text_path.name}:{name}"] = row
            print(
                f"{text_path.name:>20s} {name:12s} {row['ids']:>7d} ids  bits/byte {bpb:.4f} "
                f"({bpb - full:+.4f} vs full)  {tokens} tokens",
                flush=True,
            )
    print("fp32 PyTorch, softmax over the kept ids; reproduce: " + shlex.join([sys.executable, *sys.argv]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
