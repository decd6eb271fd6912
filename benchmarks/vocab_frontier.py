"""The --vocab-from frontier: kept ids → size, decode, prefill, bits per byte, byte-fallback share.

Converts MODEL with the defaults (int4), with `--vocab-from CORPUS` ("trim": its defaults, the
corpus's ids and the fill up to a quarter of the vocabulary), with `--no-vocab-fill` ("trim-text":
every id the corpus needs, nothing added), then at each `--sizes` target, each through
`edgekit convert`; scores every artifact on
each HELD_OUT text (not in CORPUS) with `edgekit eval --reference MODEL --text HELD_OUT`; and
measures decode and prefill speed in rounds (benchmarks/decode_speed.py's litert_lm.Benchmark,
2 threads, 256/256 tokens, each artifact in its own process, interleaved). Prints one row per
artifact and the command that reproduces it.

    .venv/bin/python benchmarks/multilingual_text.py /tmp/ml        # held-out: /tmp/ml/report/de.txt
    .venv/bin/python benchmarks/vocab_frontier.py ./gemma3-270m de-corpus.txt WORKDIR \\
        --held-out /tmp/ml/report/de.txt [--held-out MORE.txt] [--sizes 16000,8000] [--rounds 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from decode_speed import one_run  # run as a script: benchmarks/ is on sys.path

PY = sys.executable


def _convert(model: Path, out: Path, extra: list[str]) -> dict[str, object]:
    argv = [PY, "-m", "edgekit", "convert", str(model), "-o", str(out), "--threads", "2", *extra]
    print(f"$ {shlex.join(argv)}", flush=True)
    subprocess.run(argv, check=True)
    manifest: dict[str, object] = json.loads(Path(str(out) + ".json").read_text())
    return manifest


def _eval(artifact: Path, model: Path, held_out: Path) -> dict[str, object]:
    argv = [PY, "-m", "edgekit", "eval", str(artifact), "--reference", str(model), "--text", str(held_out)]
    argv += ["--threads", "2", "--max-tokens", "4096", "--json"]
    print(f"$ {shlex.join(argv)}", flush=True)
    out = subprocess.run(argv, check=True, capture_output=True, text=True)
    nll: dict[str, object] = json.loads(out.stdout)["nll"]
    return nll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("corpus", type=Path, help="the --vocab-from text")
    parser.add_argument("workdir", type=Path)
    parser.add_argument(
        "--held-out", type=Path, action="append", required=True, help="text to score, not in the corpus"
    )
    parser.add_argument("--sizes", default="", help="comma-separated --vocab-size targets")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--without", default="", help="comma-separated rows to leave out (trim-text)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    variants: list[tuple[str, list[str]]] = [
        ("default", []),
        ("trim", ["--vocab-from", str(args.corpus)]),
        ("trim-text", ["--vocab-from", str(args.corpus), "--no-vocab-fill"]),
    ]
    variants = [v for v in variants if v[0] not in args.without.split(",")]
    for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
        variants.append((f"trim-{size}", ["--vocab-from", str(args.corpus), "--vocab-size", str(size)]))
    rows: dict[str, dict[str, object]] = {}
    for name, extra in variants:
        out = args.workdir / f"{name}.litertlm"
        manifest = _convert(args.model, out, extra)
        source = manifest["source"]
        assert isinstance(source, dict)
        vocab = source.get("vocab") or {}
        rows[name] = {
            "path": str(out),
            "size_mb": round(out.stat().st_size / 1e6, 1),
            "kept_ids": vocab.get("kept_ids"),
            "filled_ids": vocab.get("filled_ids"),
            "nll": {str(text): _eval(out, args.model, text) for text in args.held_out},
        }
    speeds: dict[str, list[dict[str, float]]] = {name: [] for name in rows}
    for r in range(args.rounds):
        for name, row in rows.items():
            fig = one_run(Path(str(row["path"])))
            speeds[name].append(fig)
            print(f"round {r + 1}/{args.rounds} {name}: decode {fig['decode']:.1f}, prefill {fig['prefill']:.1f} tok/s")
    base = statistics.median(f["decode"] for f in speeds["default"])
    print(
        f"\n{'artifact':12s} {'ids':>7s} {'MB':>7s} {'decode':>7s} {'x def':>6s} {'prefill':>8s} "
        f"{'held-out':>16s} {'bpb':>7s} {'ref bpb':>8s} {'tok/B':>6s} {'fallback':>8s}"
    )
    for name, row in rows.items():
        by_text = row["nll"]
        assert isinstance(by_text, dict)
        decode = statistics.median(f["decode"] for f in speeds[name])
        prefill = statistics.median(f["prefill"] for f in speeds[name])
        row["decode_tok_s"], row["prefill_tok_s"] = decode, prefill
        ids = row["kept_ids"] or "all"
        for text, nll in by_text.items():
            print(
                f"{name:12s} {ids!s:>7s} {row['size_mb']:7.1f} {decode:7.1f} {decode / base:6.2f} {prefill:8.1f} "
                f"{Path(text).name[-16:]:>16s} {nll['artifact_bits_per_byte']:7.4f} "
                f"{nll['reference_bits_per_byte']:8.4f} {nll['artifact_tokens_per_byte']:6.3f} "
                f"{nll['artifact_byte_fallback_share']:8.1%}"
            )
    for text in args.held_out:
        scored = rows["default"]["nll"][str(text)]["bytes"]  # type: ignore[index]
        print(f"held-out: {text} ({scored} bytes scored)")
    print(f"decode/prefill: median of {args.rounds} rounds, litert_lm.Benchmark, CPU, 2 threads (this computer's)")
    print("reproduce: " + shlex.join([PY, "benchmarks/vocab_frontier.py", *sys.argv[1:]]))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "speeds": speeds}, indent=2))


if __name__ == "__main__":
    main()
