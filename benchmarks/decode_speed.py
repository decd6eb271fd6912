"""Decode and prefill speed of several `.litertlm` artifacts, measured in turns.

Each round runs `litert_lm.Benchmark` (CPU, 2 threads unless --threads, 256 prefill / 256 decode tokens)
once per artifact, each in its own process, in the order given; rounds repeat so a load
change on the machine hits every artifact alike. Prints the median of each artifact's
rounds, its ratio to the first artifact named, and the command that reproduces them.

    .venv/bin/python benchmarks/decode_speed.py A.litertlm B.litertlm … [--rounds 3] [--threads 2] [--json OUT]

An artifact is named NAME=PATH to label it (default: the file's stem).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

from convert_270m import decode_speed  # run as a script: benchmarks/ is on sys.path

PY = sys.executable


def one_run(model: Path, threads: int = 2) -> dict[str, float]:
    """Decode and prefill tokens/s of one Benchmark run of `model` (its XNNPACK cache in a temp folder)."""
    with tempfile.TemporaryDirectory(prefix="edgekit-speed-") as cache_dir:
        speed = decode_speed(model, Path(cache_dir), threads)
    return {"decode": speed["decode_tok_s"], "prefill": speed["prefill_tok_s"]}


def _named(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    return (name, Path(path)) if sep else (Path(spec).stem, Path(spec))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifacts", nargs="+", help="NAME=PATH or PATH of each .litertlm; the first is the baseline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of each run (default 2)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    named = [_named(a) for a in args.artifacts]
    for name, path in named:
        if not path.is_file():
            sys.exit(f"decode_speed: {path} ({name}) does not exist")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in named}
    for r in range(args.rounds):
        for name, path in named:
            figures = one_run(path, args.threads)
            runs[name].append(figures)
            print(
                f"round {r + 1}/{args.rounds} {name}: decode {figures['decode']:.1f} tok/s, "
                f"prefill {figures['prefill']:.1f} tok/s",
                flush=True,
            )
    base = named[0][0]
    medians = {name: {k: statistics.median(f[k] for f in runs[name]) for k in ("decode", "prefill")} for name in runs}
    print(
        f"\nmedian of {args.rounds} rounds; litert_lm.Benchmark, CPU, {args.threads} threads, "
        "256 prefill / 256 decode tokens"
    )
    print(f"{'artifact':28s} {'MB':>7s} {'decode tok/s':>13s} {'× ' + base:>12s} {'prefill tok/s':>14s}")
    for name, path in named:
        m = medians[name]
        ratio = m["decode"] / medians[base]["decode"]
        size = path.stat().st_size / 1e6
        print(f"{name:28s} {size:7.1f} {m['decode']:13.1f} {ratio:12.2f} {m['prefill']:14.1f}")
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    print("reproduce: " + shlex.join([PY, "benchmarks/decode_speed.py", *sys.argv[1:]]))
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "medians": medians}, indent=2))


if __name__ == "__main__":
    main()
