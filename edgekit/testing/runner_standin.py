"""A `litert_lm_main` stand-in that really runs the model with the host LiteRT-LM engine.

It takes the real binary's flags that edgekit uses, reads user turns from stdin until an
empty line (`--multi_turns`), answers each through a LiteRT-LM conversation, and prints
what the real binary prints, BenchmarkInfo block included (`--benchmark`). While it runs
inside the ADB device emulator it marks itself busy, so the simulated battery drains at
its busy rate. `write_runner_standin(path)` writes it as an executable script to push as
the runner (deploy notes that it is not an ELF binary).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

PROMPT = "Please enter the prompt (or press Enter to end): "
_SEP = "-" * 50


def _flags(argv: list[str]) -> dict[str, str]:
    out = {}
    for arg in argv:
        if arg.startswith("--"):
            key, _, value = arg[2:].partition("=")
            out[key] = value if _ else "true"
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}ms"


def main(argv: list[str] | None = None) -> int:
    """Run like `litert_lm_main --model_path=M --multi_turns --benchmark < turns`."""
    flags = _flags(sys.argv[1:] if argv is None else argv)
    model = flags.get("model_path")
    if not model or not Path(model).is_file():
        print(f"ERROR: model_path {model!r} does not exist", file=sys.stderr)
        return 1
    busy_dir = os.environ.get("EDGEKIT_EMU_DIR")
    marker = Path(busy_dir) / "busy" / str(os.getpid()) if busy_dir else None
    if marker is not None:
        marker.write_text("runner\n")
    try:
        return _run(model, flags)
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)


def _run(model: str, flags: dict[str, str]) -> int:
    import litert_lm

    from edgekit.engine import open_engine
    from edgekit.errors import EdgekitError

    threads = int(flags["num_cpu_threads"]) if flags.get("num_cpu_threads", "").isdigit() else None
    max_out = int(flags["max_output_tokens"]) if flags.get("max_output_tokens", "").isdigit() else None
    max_tokens = int(flags["max_num_tokens"]) if flags.get("max_num_tokens", "").isdigit() else None
    t0 = time.perf_counter()
    try:
        with open_engine(model, threads=threads, max_num_tokens=max_tokens) as engine:
            init_s = time.perf_counter() - t0
            turns: list[tuple[int, float, int, float]] = []
            session = engine.create_session(sampler_config=litert_lm.SamplerConfig(top_k=1), max_output_tokens=max_out)
            ttft = None
            # Test knob: crash (exit 134, like an abort) in the middle of this turn.
            crash_at = int(os.environ.get("EDGEKIT_STANDIN_CRASH_AT_TURN", "0") or 0)
            turn_no = 0
            while True:
                sys.stdout.write(PROMPT)
                sys.stdout.flush()
                line = sys.stdin.readline()
                if not line or not line.strip():
                    break
                turn_started = time.monotonic()
                turn_no += 1
                if turn_no == crash_at:
                    sys.stdout.write("partial answ")
                    sys.stdout.flush()
                    print("F0000 runner crashed: simulated abort", file=sys.stderr)
                    os._exit(134)
                session.run_prefill([line.rstrip("\n")])
                # Stream the answer as the real binary does, so a reader sees the first token early.
                for chunk in session.run_decode_async():
                    for text in chunk.texts:
                        sys.stdout.write(text)
                        sys.stdout.flush()
                info = session.get_benchmark_info()
                # A slower "device" for power tests: pad each turn to EDGEKIT_STANDIN_TURN_S seconds.
                pad = float(os.environ.get("EDGEKIT_STANDIN_TURN_S", "0") or 0) - (time.monotonic() - turn_started)
                if pad > 0:
                    time.sleep(pad)
                turns.append(
                    (
                        info.last_prefill_token_count,
                        info.last_prefill_tokens_per_second,
                        info.last_decode_token_count,
                        info.last_decode_tokens_per_second,
                    )
                )
                if ttft is None:
                    ttft = info.time_to_first_token_in_second
                sys.stdout.write("\n")
                sys.stdout.flush()
            session.close()
    except EdgekitError as exc:  # the model does not load (litert_lm errors inside are RuntimeError)
        sys.stderr.write(f"ERROR: Failed to create engine: {exc}\n")
        return 1
    if "benchmark" in flags:
        _print_benchmark(init_s, ttft or 0.0, turns)
    return 0


def _print_benchmark(init_s: float, ttft: float, turns: list[tuple[int, float, int, float]]) -> None:
    out = ["BenchmarkInfo:", "  Init Phases (1):", f"    - Total init time: {init_s * 1000:.2f} ms", _SEP]
    out += [f"  Time to first token: {ttft:.2f} s", _SEP, f"  Prefill Turns (Total {len(turns)} turns):"]
    for i, (tokens, tps, _, _) in enumerate(turns, 1):
        out.append(f"    Prefill Turn {i}: Processed {tokens} tokens in {_ms(tokens / tps if tps else 0)} duration.")
        out.append(f"      Prefill Speed: {tps:.2f} tokens/sec.")
    out += [_SEP, f"  Decode Turns (Total {len(turns)} turns):"]
    for i, (_, _, tokens, tps) in enumerate(turns, 1):
        out.append(f"    Decode Turn {i}: Processed {tokens} tokens in {_ms(tokens / tps if tps else 0)} duration.")
        out.append(f"      Decode Speed: {tps:.2f} tokens/sec.")
    out += [_SEP, "  TextToTokenIds Turns (Total 0 turns):", "    No text to token ids turns recorded.", _SEP, _SEP]
    print("\n".join(out))


def write_runner_standin(path: Path) -> Path:
    """Write the stand-in as an executable script at `path` (runs with this Python)."""
    path.write_text(
        f"#!{sys.executable}\nimport sys\nfrom edgekit.testing.runner_standin import main\nsys.exit(main())\n"
    )
    path.chmod(0o755)
    return path


if __name__ == "__main__":
    sys.exit(main())
