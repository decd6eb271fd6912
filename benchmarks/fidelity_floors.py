"""The real Gemma 3 270M through each --quant: the figures behind converters/gemma3.toml's floors.

Materializes the trained Gemma 3 270M (`edgekit example gemma3-270m`, from the PyPI
packages of edgekit[gemma3-270m]), converts it with each quant (edgekit's other defaults,
--no-verify, 2 threads, one conversion at a time), then measures each artifact against
the fp32 PyTorch model: next-token top-1 agreement (edgekit's probe sentences) and the
engine-level NLL gap on both sections of the built-in text (1024 tokens each). Prints a
Markdown table and the command that reproduces it. Not part of CI: ~8 GB of memory and
20-40 minutes on 2 cores.

    .venv/bin/python benchmarks/fidelity_floors.py [--workdir DIR] [--quant int4 ...] [--json OUT] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PY = sys.executable


def edgekit(*args: str) -> None:
    proc = subprocess.run([PY, "-m", "edgekit", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"edgekit {shlex.join(args)} failed:\n{proc.stderr[-3000:]}")


def measure(artifact: Path, model_dir: Path) -> dict[str, Any]:
    from edgekit.convert import fidelity, nll
    from edgekit.convert.pipeline import bundled_tflite, load_reference

    model, tok = load_reference(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        top1 = fidelity.check(
            tflite_path=bundled_tflite(artifact, Path(tmp)),
            bundle_path=None,
            model=model,
            tokenizer=tok,
            threads=2,
        )
    row: dict[str, Any] = {"size_mb": round(artifact.stat().st_size / 1e6, 1), "top1": round(top1.top1_agreement, 3)}
    for section in ("report", "selection"):
        t0 = time.perf_counter()
        gap = nll.measure(artifact, model, text=nll.builtin_text(section), threads=2)
        row[section] = {
            "gap": round(gap.gap_nats_per_token, 3),
            "stderr": round(gap.gap_stderr, 3),
            "tokens": gap.tokens,
            "reference_nll": round(gap.reference_nll, 3),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, help="keep the model and artifacts here (reused when present)")
    ap.add_argument("--quant", action="append", help="quants to measure [default: fp32, int8, int4, int4-b32]")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    ap.add_argument(
        "--reuse", action="store_true", help="measure an artifact already in --workdir instead of converting again"
    )
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="edgekit-floors-"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = work / "gemma3-270m"
    if not model_dir.is_dir():
        edgekit("example", "gemma3-270m", str(model_dir))
    rows = {}
    for quant in args.quant or ["fp32", "int8", "int4", "int4-b32"]:
        out = work / f"gemma3-270m-{quant}.litertlm"
        if not (args.reuse and out.is_file()):
            edgekit("convert", str(model_dir), "--quant", quant, "--no-verify", "--threads", "2", "-o", str(out))
        rows[quant] = measure(out, model_dir)
        print(f"{quant}: {json.dumps(rows[quant])}", file=sys.stderr, flush=True)
    print(f"Gemma 3 270M (base, edgekit example gemma3-270m), {platform.machine()}, 2 threads\n")
    print("| --quant | size MB | top-1 | NLL gap report (±) | NLL gap selection (±) | fp32 PyTorch NLL (report) |")
    print("|---|---|---|---|---|---|")
    for quant, r in rows.items():
        rep, sel = r["report"], r["selection"]
        print(
            f"| {quant} | {r['size_mb']} | {r['top1']:.1%} | {rep['gap']:+.3f} (±{rep['stderr']:.3f}, "
            f"{rep['tokens']} tok) | {sel['gap']:+.3f} (±{sel['stderr']:.3f}) | {rep['reference_nll']:.3f} |"
        )
    print(f"\nreproduce: {shlex.join([PY, 'benchmarks/fidelity_floors.py', *sys.argv[1:]])}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
