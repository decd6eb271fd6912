"""What counting a --vocab-from corpus written on one line costs, against the same words in lines.

Writes a text of German words (seeded) twice — on one line, and as lines of 20 words — and
times edgekit's count of each (`edgekit.convert.vocab._count`, as `convert --vocab-from` runs
it: 1 MiB blocks, the model's own tokenizer), in turns, for --rounds rounds. Prints each time,
the one-line/lines ratio of the medians, and the command that reproduces them.

    .venv/bin/python benchmarks/vocab_long_line.py MODEL_DIR [--mb 32] [--rounds 2] [--work DIR]

Run it from an older checkout (PYTHONPATH=THAT_CHECKOUT) to compare edgekits: the text is the same.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

_WORDS = ["der", "die", "das", "Haus", "Grüße", "und", "ist", "nicht", "ein", "eine", "Straße", "Telefon"]


def write_texts(folder: Path, megabytes: float) -> tuple[Path, Path]:
    """The same seeded words on one line and in lines of 20, about `megabytes` MB each."""
    rng = random.Random(1)
    words: list[str] = []
    size = 0
    while size < megabytes * 1e6:
        words.append(rng.choice(_WORDS))
        size += len(words[-1].encode()) + 1
    one, lines = folder / "one-line.txt", folder / "lines.txt"
    one.write_text(" ".join(words), encoding="utf-8")
    lines.write_text("\n".join(" ".join(words[i : i + 20]) for i in range(0, len(words), 20)), encoding="utf-8")
    return one, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="a checkpoint folder: its tokenizer counts")
    ap.add_argument("--mb", type=float, default=32.0, help="size of each text in MB (default 32)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, help="folder for the two texts (default: a temp folder)")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    from edgekit.convert import vocab

    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    times: dict[str, list[float]] = {"one line": [], "lines": []}
    with tempfile.TemporaryDirectory(prefix="edgekit-long-line-") as tmp:
        folder = args.work or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        one, lines = write_texts(folder, args.mb)
        for r in range(args.rounds):
            for label, path in (("one line", one), ("lines", lines)):
                start = time.perf_counter()
                counts = vocab._count(tokenizer, vocab.read_texts([path]))
                times[label].append(time.perf_counter() - start)
                tokens = sum(counts.values())
                print(f"round {r + 1} {label:8s} {times[label][-1]:7.1f} s  {tokens:,} tokens", flush=True)
    one_s, lines_s = (statistics.median(times[k]) for k in ("one line", "lines"))
    print(f"\n{args.mb:g} MB: one line {one_s:.1f} s, lines {lines_s:.1f} s (medians), ratio {one_s / lines_s:.2f}")
    print(f"edgekit from {Path(vocab.__file__).parents[2]}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    print("reproduce: " + shlex.join([sys.executable, *sys.argv]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
