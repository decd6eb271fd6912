"""LiteRT-LM and llama.cpp on the same weights: size, decode/prefill speed and NLL gap of the real Gemma 3 270M.

Rows: edgekit's default `.litertlm` (`edgekit convert` with no flag) and llama.cpp GGUFs
Q4_0, Q4_K_M, Q8_0 and Q4_0 `--pure`, each made with the llama.cpp sdist's own
convert_hf_to_gguf.py (fp32 checkpoint -> f32 GGUF) and llama-quantize. All from one fp32
checkpoint, `edgekit example gemma3-270m` (the trained base model, de-quantized from a
Q4_K_M GGUF: Q4_K_M re-finds that file's own grid, so its gap is not comparable).

Speed: `--threads` threads, 256 prefill / 256 decode tokens; LiteRT-LM through
`litert_lm.Benchmark` (benchmarks/decode_speed.py's one_run), llama.cpp through
`llama-bench -p 256 -n 256 -t T -r REPS -o json`. Each round runs every artifact once, in
turn (interleaved), each in its own process; the table gives the median over rounds.

NLL gap, all on the built-in "report" text `edgekit eval` uses (its sha256 printed):
edgekit's exact engine NLL gap vs fp32 PyTorch (edgekit.convert.nll.measure, as
benchmarks/multilingual_gap.py computes it); llama.cpp's ln(PPL_artifact / PPL_f32) from
`llama-perplexity -c CTX --chunks K` on that text written to a file, the f32 GGUF as
reference. The two gaps are both nats/token over the same text, but over different spans
(edgekit's windows vs llama-perplexity's second halves of CTX-token chunks).

Conversions are cached in `--work` and reused (the fp32 checkpoint, ~1.1 GB; the
`.litertlm`, whose `edgekit convert` peaks ~6 GB RSS and takes minutes; the GGUFs), and so
are the NLL figures (keyed by their settings).

    .venv/bin/python benchmarks/runtimes.py --work /tmp/rt [--rounds 3] [--threads 2] [--skip-litert]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from decode_speed import one_run  # run as a script: benchmarks/ is on sys.path

PY = sys.executable
REPO = Path(__file__).resolve().parent.parent
LLAMA_VERSION = "0c1e570"
LLAMA_BIN = REPO / ".cache" / "llama.cpp" / f"build-{LLAMA_VERSION}-avx2" / "bin"
LLAMA_SRC = REPO / ".cache" / "llama.cpp" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"
LITERT = "edgekit int4 (default)"
GGUFS: dict[str, tuple[str, list[str]]] = {
    # name: (file stem, llama-quantize arguments before the input)
    "llama.cpp Q4_0": ("q4_0", ["Q4_0"]),
    "llama.cpp Q4_K_M": ("q4_k_m", ["Q4_K_M"]),
    "llama.cpp Q8_0": ("q8_0", ["Q8_0"]),
    "llama.cpp Q4_0 --pure": ("q4_0-pure", ["Q4_0", "--pure"]),
}
NOT_COMPARABLE = "llama.cpp Q4_K_M"


@dataclass(frozen=True, kw_only=True)
class Speed:
    """One benchmark run of one artifact: tokens per second."""

    decode_tok_s: float
    prefill_tok_s: float


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _run(argv: list[str], *, log: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run `argv`; its stdout, or SystemExit naming the command and the tail of its output."""
    _log("$ " + shlex.join(argv))
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        sys.exit(f"runtimes: {shlex.join(argv)} exited {proc.returncode}:\n{tail}")
    return proc.stdout + proc.stderr


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --- artifacts ------------------------------------------------------------------------------


def checkpoint(work: Path) -> Path:
    """The fp32 Gemma 3 270M checkpoint folder in `work` (`edgekit example gemma3-270m`)."""
    model = work / "gemma3-270m"
    if not (model / "edgekit-example.json").is_file():
        _run([PY, "-m", "edgekit", "example", "gemma3-270m", str(model)])
    return model


def litert_artifact(work: Path, model: Path, threads: int) -> Path:
    """edgekit's default `.litertlm` of `model` (`edgekit convert`, no recipe flag)."""
    out = work / "edgekit-int4.litertlm"
    if not (out.is_file() and Path(f"{out}.json").is_file()):
        _run(
            [PY, "-m", "edgekit", "convert", str(model), "-o", str(out), "--threads", str(threads)],
            log=work / "convert.log",
        )
    return out


def f32_gguf(work: Path, model: Path) -> Path:
    """The f32 GGUF of `model`, by the llama.cpp sdist's convert_hf_to_gguf.py and its gguf-py."""
    out = work / "gguf" / "f32.gguf"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".part")
        env = {**os.environ, "PYTHONPATH": str(LLAMA_SRC / "gguf-py")}
        argv = [PY, str(LLAMA_SRC / "convert_hf_to_gguf.py"), str(model), "--outtype", "f32", "--outfile", str(part)]
        _run(argv, log=work / "gguf" / "f32.log", env=env)
        part.rename(out)
    return out


def quantized_gguf(work: Path, f32: Path, stem: str, args: list[str], threads: int) -> Path:
    """`f32` quantized by llama-quantize (`args`: the type, then flags such as --pure)."""
    out = work / "gguf" / f"{stem}.gguf"
    if not out.is_file():
        kind, flags = args[0], args[1:]
        part = out.with_suffix(".part")
        argv = [str(LLAMA_BIN / "llama-quantize"), *flags, str(f32), str(part), kind, str(threads)]
        _run(argv, log=work / "gguf" / f"{stem}.log")
        part.rename(out)
    return out


# --- quality --------------------------------------------------------------------------------


def eval_text_file(work: Path) -> tuple[Path, str]:
    """The built-in report text (edgekit eval's default) as one UTF-8 file, documents blank-line apart; its sha256."""
    from edgekit.convert import nll

    text = nll.builtin_text(nll.Section.REPORT)
    path = work / "report.txt"
    data = "\n\n".join(text.documents) + "\n"
    if not path.is_file() or path.read_text(encoding="utf-8") != data:
        path.write_text(data, encoding="utf-8")
    return path, hashlib.sha256(data.encode()).hexdigest()


def _cached(path: Path, key: dict[str, object]) -> dict[str, float] | None:
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("key") == key:
            figures: dict[str, float] = data["figures"]
            return figures
    return None


def _store(path: Path, key: dict[str, object], figures: dict[str, float]) -> None:
    path.write_text(json.dumps({"key": key, "figures": figures}, indent=2) + "\n")


def litert_gap(work: Path, artifact: Path, model_dir: Path, max_tokens: int, threads: int) -> dict[str, float]:
    """edgekit's exact engine NLL gap vs fp32 PyTorch on the built-in report text (cached in `work`)."""
    key: dict[str, object] = {"artifact_sha256": _sha256(artifact), "max_tokens": max_tokens, "text": "builtin:report"}
    cache = work / "nll-litert.json"
    if (hit := _cached(cache, key)) is not None:
        return hit
    from edgekit.convert import nll

    # `edgekit convert` measured the same figure (nll.measure, built-in report text, default budget).
    manifest = json.loads(Path(f"{artifact}.json").read_text())
    recorded = manifest.get("fidelity", {}).get("nll") or {}
    if max_tokens == nll.DEFAULT_MAX_TOKENS and recorded.get("text", {}).get("name") == "builtin:report":
        _log(f"the NLL gap of {artifact.name}: from its manifest (edgekit convert's own nll.measure)")
        figures = {k: float(recorded[k]) for k in ("artifact_nll", "reference_nll", "tokens")}
        figures |= {"gap": float(recorded["gap_nats_per_token"]), "stderr": float(recorded["gap_stderr"])}
        _store(cache, key, figures)
        return figures
    import torch

    from edgekit.convert.pipeline import load_reference

    torch.set_num_threads(threads)
    model, tokenizer = load_reference(model_dir)
    _log(f"scoring {artifact.name} with the engine vs fp32 PyTorch, {max_tokens} tokens …")
    gap = nll.measure(
        artifact,
        model,
        text=nll.builtin_text(nll.Section.REPORT),
        max_tokens=max_tokens,
        threads=threads,
        reference_tokenizer=tokenizer,
    )
    figures = {
        "gap": gap.gap_nats_per_token,
        "stderr": gap.gap_stderr,
        "tokens": float(gap.tokens),
        "artifact_nll": gap.artifact_nll,
        "reference_nll": gap.reference_nll,
    }
    _store(cache, key, figures)
    return figures


def parse_perplexity(text: str) -> tuple[float, float]:
    """PPL and its ± from llama-perplexity's `Final estimate: PPL = 12.3456 +/- 0.12345` line."""
    for line in reversed(text.splitlines()):
        if "Final estimate: PPL = " in line:
            value, _, err = line.split("Final estimate: PPL = ", 1)[1].partition("+/-")
            return float(value), float(err)
    raise ValueError("llama-perplexity printed no 'Final estimate: PPL' line")


def perplexity(work: Path, gguf: Path, text: Path, ctx: int, chunks: int, threads: int) -> dict[str, float]:
    """llama-perplexity of `gguf` on `text` (-c ctx, --chunks chunks), cached in `work`."""
    key: dict[str, object] = {"gguf": gguf.name, "size": gguf.stat().st_size, "text": _sha256(text), "c": ctx}
    key["chunks"] = chunks
    cache = work / "gguf" / f"ppl-{gguf.stem}.json"
    if (hit := _cached(cache, key)) is not None:
        return hit
    argv = [str(LLAMA_BIN / "llama-perplexity"), "-m", str(gguf), "-f", str(text), "-c", str(ctx)]
    argv += ["--chunks", str(chunks), "-t", str(threads), "-b", str(ctx)]
    out = _run(argv, log=work / "gguf" / f"ppl-{gguf.stem}.log")
    ppl, err = parse_perplexity(out)
    figures = {"ppl": ppl, "ppl_err": err}
    _store(cache, key, figures)
    return figures


# --- speed ----------------------------------------------------------------------------------


def parse_llama_bench(text: str) -> Speed:
    """Prefill (pp) and decode (tg) tokens/s from `llama-bench -o json` output (a JSON list of tests)."""
    tests = json.loads(text[text.index("[") :])
    prefill = [t["avg_ts"] for t in tests if t["n_prompt"] > 0 and t["n_gen"] == 0]
    decode = [t["avg_ts"] for t in tests if t["n_gen"] > 0 and t["n_prompt"] == 0]
    if len(prefill) != 1 or len(decode) != 1:
        raise ValueError(f"expected one pp and one tg test in llama-bench's JSON, got {len(tests)} tests")
    return Speed(decode_tok_s=round(float(decode[0]), 1), prefill_tok_s=round(float(prefill[0]), 1))


def llama_bench(gguf: Path, threads: int, reps: int) -> Speed:
    """One llama-bench run: 256 prefill and 256 decode tokens, `reps` repetitions, JSON output."""
    argv = [str(LLAMA_BIN / "llama-bench"), "-m", str(gguf), "-p", "256", "-n", "256", "-t", str(threads)]
    argv += ["-r", str(reps), "-o", "json"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"runtimes: {shlex.join(argv)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return parse_llama_bench(proc.stdout)


def litert_bench(artifact: Path) -> Speed:
    """One `litert_lm.Benchmark` run (CPU, 2 threads, 256/256 tokens), as benchmarks/decode_speed.py runs it."""
    figures = one_run(artifact)
    return Speed(decode_tok_s=figures["decode"], prefill_tok_s=figures["prefill"])


# --- report ---------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="cache of the converted artifacts (reused)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=1, help="llama-bench -r within one round (default 1)")
    parser.add_argument("--skip-litert", action="store_true", help="no .litertlm row (its conversion is slow)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="edgekit NLL: scored tokens (default 1024)")
    parser.add_argument("--ctx", type=int, default=512, help="llama-perplexity -c (default 512)")
    parser.add_argument("--chunks", type=int, default=8, help="llama-perplexity --chunks (default 8)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args()
    if not args.skip_litert and args.threads != 2:
        sys.exit("runtimes: litert_lm.Benchmark runs with 2 threads here (convert_270m.decode_speed); use --threads 2")
    for tool in ("llama-bench", "llama-perplexity", "llama-quantize"):
        if not (LLAMA_BIN / tool).is_file():
            sys.exit(
                f"runtimes: {LLAMA_BIN / tool} is missing: build it with "
                f"LLAMA_CPP_TARGETS='llama-cli llama-quantize llama-perplexity llama-bench' scripts/build-llama-cpp"
            )
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)

    model = checkpoint(work)
    artifacts: dict[str, Path] = {}
    if not args.skip_litert:
        artifacts[LITERT] = litert_artifact(work, model, args.threads)
    f32 = f32_gguf(work, model)
    for name, (stem, qargs) in GGUFS.items():
        artifacts[name] = quantized_gguf(work, f32, stem, qargs, args.threads)

    text, text_sha = eval_text_file(work)
    gaps: dict[str, dict[str, float]] = {}
    if not args.skip_litert:
        gaps[LITERT] = litert_gap(work, artifacts[LITERT], model, args.max_tokens, args.threads)
    ref = perplexity(work, f32, text, args.ctx, args.chunks, args.threads)
    for name in GGUFS:
        figures = perplexity(work, artifacts[name], text, args.ctx, args.chunks, args.threads)
        gaps[name] = {**figures, "gap": math.log(figures["ppl"] / ref["ppl"])}

    runs: dict[str, list[Speed]] = {name: [] for name in artifacts}
    for r in range(args.rounds):
        for name, path in artifacts.items():
            speed = litert_bench(path) if name == LITERT else llama_bench(path, args.threads, args.reps)
            runs[name].append(speed)
            print(
                f"round {r + 1}/{args.rounds} {name}: decode {speed.decode_tok_s:.1f} tok/s, "
                f"prefill {speed.prefill_tok_s:.1f} tok/s",
                flush=True,
            )

    print("\n| artifact | MB | decode tok/s | prefill tok/s | NLL gap (nats/token) |")
    print("|---|---|---|---|---|")
    medians: dict[str, Speed] = {}
    for name, path in artifacts.items():
        m = Speed(
            decode_tok_s=statistics.median(s.decode_tok_s for s in runs[name]),
            prefill_tok_s=statistics.median(s.prefill_tok_s for s in runs[name]),
        )
        medians[name] = m
        g = gaps[name]
        if name == LITERT:
            gap = f"{g['gap']:+.3f} ±{g['stderr']:.3f} (exact, vs fp32 PyTorch, {int(g['tokens'])} tokens)"
        else:
            gap = f"{g['gap']:+.3f} (ln PPL {g['ppl']:.3f} / {ref['ppl']:.3f})"
            if name == NOT_COMPARABLE:
                gap += " not comparable ¹"
        size = path.stat().st_size / 1e6
        print(f"| {name} | {size:.1f} | {m.decode_tok_s:.1f} | {m.prefill_tok_s:.1f} | {gap} |")
    print(f"| llama.cpp f32 (the PPL reference) | {f32.stat().st_size / 1e6:.1f} | — | — | 0 (PPL {ref['ppl']:.3f}) |")
    print(
        "\n¹ the fp32 weights were de-quantized from a Q4_K_M GGUF, so Q4_K_M re-finds its own grid: "
        "its gap is not what Q4_K_M costs a model trained in fp32."
    )
    print(
        f"\nspeed: median of {args.rounds} interleaved rounds, {args.threads} threads, 256 prefill / 256 decode tokens "
        f"(litert_lm.Benchmark; llama-bench -r {args.reps}), on this computer's CPU"
    )
    print(
        f"NLL text: edgekit's built-in report text ({text.name}, sha256 {text_sha}); llama-perplexity "
        f"-c {args.ctx} --chunks {args.chunks}; edgekit nll.measure --max-tokens {args.max_tokens}"
    )
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.machine()}; load average "
        f"{os.getloadavg()[0]:.1f} at the end; llama.cpp {LLAMA_VERSION} (avx2 build)"
    )
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print("reproduce: " + shlex.join([PY, "benchmarks/runtimes.py", *sys.argv[1:]]))
    if args.json:
        data = {
            "runs": {n: [vars(s) for s in rs] for n, rs in runs.items()},
            "medians": {n: vars(m) for n, m in medians.items()},
            "gaps": gaps,
            "f32_ppl": ref,
            "text_sha256": text_sha,
            "sizes_mb": {n: p.stat().st_size / 1e6 for n, p in artifacts.items()},
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
