"""edgekit convert vs raw litert-torch export_hf on a Gemma-3-270M-shaped model.

Builds the published Gemma 3 270M shape with random weights (hidden 640, intermediate
2048, 18 layers 5 sliding : 1 full, 4 heads, 1 KV head, head_dim 256, vocab 262144, tied
embeddings), then, each in its own process so peak RSS is that run's alone:

  same options   edgekit convert --no-verify   vs  python -m litert_torch.generative.export_hf
                 (int4 block-32, cache 1024, prefill 128, lightweight)
  defaults       edgekit convert (its defaults, fidelity check on)
                 vs  raw export_hf with upstream's defaults
  lightweight    edgekit defaults with --no-lightweight, to compare fidelity and size,
                 and fp32 with lightweight conversion, which must agree with PyTorch

and measures decode speed of both default artifacts with litert_lm.Benchmark (2 threads,
256 prefill / 256 decode tokens). Prints every figure and the command to reproduce it.
Not part of CI: needs ~7 GB of memory and ~10 minutes on 2 cores.

    .venv/bin/python benchmarks/convert_270m.py [--workdir DIR] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
# Random weights give nearly flat logits over 262,144 tokens, which INT4 reorders freely:
# the INT4 runs report their agreement without a floor; the fp32 run keeps its 99% floor
# and shows the lightweight export itself is exact.
MIN_AGREEMENT = "0"


def run_measured(argv: list[str], log: Path) -> dict[str, float]:
    """Run argv as a child; wall time and that child's own peak RSS (from wait4)."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({log}): {shlex.join(argv)}\n" + log.read_text()[-3000:])
    return {"wall_s": round(wall, 1), "peak_rss_gb": round(usage.ru_maxrss / 1024 / 1024, 2)}


def decode_speed(model: Path, cache_dir: Path, threads: int = 2) -> dict[str, float]:
    code = (
        "import json, sys, litert_lm\n"
        "litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)\n"
        "b = litert_lm.Benchmark(model_path=sys.argv[1], backend=litert_lm.Backend.CPU(thread_count=int(sys.argv[3])),"
        " prefill_tokens=256, decode_tokens=256, cache_dir=sys.argv[2])\n"
        "i = b.run()\n"
        "print(json.dumps({'decode_tok_s': i.last_decode_tokens_per_second,"
        " 'prefill_tok_s': i.last_prefill_tokens_per_second}))\n"
    )
    out = subprocess.run(
        [PY, "-c", code, str(model), str(cache_dir), str(threads)], capture_output=True, text=True, check=True
    )
    return {k: round(v, 1) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="edgekit-bench-270m-"))
    work.mkdir(parents=True, exist_ok=True)
    model = work / "gemma3-270m-shape"
    edgekit = [PY, "-m", "edgekit"]
    if not (model / "edgekit-example.json").is_file():
        print(f"building the 270M-shaped model in {model} …", flush=True)
        subprocess.run([*edgekit, "example", "gemma3-270m-shape", str(model)], check=True)
    weights_mb = (model / "model.safetensors").stat().st_size / 1e6
    same = ["--quant", "int4", "--cache-length", "1024", "--prefill-lengths", "128"]
    runs: dict[str, dict[str, object]] = {}

    def edgekit_run(name: str, extra: list[str]) -> None:
        out = work / f"{name}.litertlm"
        argv = [*edgekit, "convert", str(model), "-o", str(out), "--force", *extra]
        print(f"[{name}] {shlex.join(argv)}", flush=True)
        fig = run_measured(argv, work / f"{name}.log")
        manifest = json.loads((work / f"{name}.litertlm.json").read_text())
        runs[name] = {
            **fig,
            "size_mb": round(out.stat().st_size / 1e6, 1),
            "fidelity": manifest["fidelity"],
            "stage_times_s": manifest["conversion"]["stage_times_s"],
            "path": str(out),
        }

    def raw_run(name: str, extra: list[str]) -> None:
        out_dir = work / name
        argv = [PY, "-m", "litert_torch.generative.export_hf", f"--model={model}", f"--output_dir={out_dir}", *extra]
        print(f"[{name}] {shlex.join(argv)}", flush=True)
        fig = run_measured(argv, work / f"{name}.log")
        out = out_dir / "model.litertlm"
        runs[name] = {**fig, "size_mb": round(out.stat().st_size / 1e6, 1), "path": str(out)}

    edgekit_run("edgekit_same", [*same, "--lightweight", "--no-verify"])
    raw_run(
        "raw_same",
        [
            "--quantization_recipe=dynamic_wi4b32_afp32",
            "--cache_length=1024",
            "--prefill_lengths=[128]",
            "--experimental_lightweight_conversion=True",
        ],
    )
    edgekit_run("edgekit_default", ["--min-agreement", MIN_AGREEMENT])
    raw_run("raw_default", [])
    edgekit_run("edgekit_no_lightweight", ["--no-lightweight", "--min-agreement", MIN_AGREEMENT])
    edgekit_run("edgekit_fp32_lightweight", ["--quant", "fp32", "--lightweight"])

    cache = work / "xnnpack-cache"
    cache.mkdir(exist_ok=True)
    speed = {name: decode_speed(Path(str(runs[name]["path"])), cache) for name in ("edgekit_default", "raw_default")}

    def ratio(a: str, b: str, key: str) -> float:
        return round(float(runs[a][key]) / float(runs[b][key]), 3)  # type: ignore[arg-type]

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "fp32_weights_mb": round(weights_mb, 1),
        "runs": runs,
        "decode": speed,
        "same_options": {
            "time_ratio": ratio("edgekit_same", "raw_same", "wall_s"),
            "rss_ratio": ratio("edgekit_same", "raw_same", "peak_rss_gb"),
            "size_equal": runs["edgekit_same"]["size_mb"] == runs["raw_same"]["size_mb"],
        },
        "defaults": {
            "decode_speedup": round(speed["edgekit_default"]["decode_tok_s"] / speed["raw_default"]["decode_tok_s"], 2),
            "rss_ratio": ratio("edgekit_default", "raw_default", "peak_rss_gb"),
        },
        "command": shlex.join([PY, *sys.argv]),
    }
    print(json.dumps(result, indent=2))
    print(
        "\nsame options:  edgekit/raw time {time_ratio}x (target <= 1.05), peak RSS {rss_ratio}x "
        "(target <= 1.05), size equal: {size_equal}".format(**result["same_options"])
    )
    print(
        "defaults:      edgekit decodes {decode_speedup}x faster (target >= 1.5), peak RSS {rss_ratio}x "
        "(target <= 0.75)".format(**result["defaults"])
    )
    print(f"reproduce: {result['command']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
