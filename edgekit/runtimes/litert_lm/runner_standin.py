"""Stand-ins for LiteRT-LM's on-device runner binaries, one per upstream behaviour.

They are the test double of this runtime's runners (this package is the other side), so,
like it, they name LiteRT-LM and its sources; the rest of edgekit writes and runs them only
through the Runtime interface (`Runtime.write_runner_standin`, `run_runner_standin`).

Each really runs the pushed model with the host LiteRT-LM engine and behaves, on its
command line, stdin, stdout, stderr and exit status, like the upstream binary it stands
for (sources read at google-ai-edge/LiteRT-LM, named per kind below):

* ``advanced`` — ``litert_lm_advanced_main`` (runtime/engine/litert_lm_advanced_main.cc,
  litert_lm_lib.cc, shared_flags.cc; lib at commit 0c158988): absl flags; with
  ``--multi_turns`` it prints ``Please enter the prompt (or press Enter to end): `` and
  reads a turn per stdin line until an empty one; ``--async`` (default true) streams the
  answer, ``--async=false`` prints it whole when done; ``--benchmark`` logs BenchmarkInfo
  with ``ABSL_LOG(INFO)`` on stderr, absl's prefix on its first line only, and refuses to
  show it for multi-turn + async (logs an ERROR instead).
* ``simple`` — the newer, self-contained ``litert_lm_main`` (runtime/engine/litert_lm_main.cc,
  2026): only ``--backend`` (default gpu), ``--model_path``, ``--input_prompt``,
  ``--input_prompt_file``; one prompt, no stdin; prints ``input_prompt: …``, streams the
  answer, then BenchmarkInfo on stdout; errors are a CHECK failure and SIGABRT (exit 134).
* ``old`` — an older ``litert_lm_main`` (runtime/engine/litert_lm_main.cc at commit
  41059bc1): ``--backend``, ``--model_path``, ``--input_prompt`` only; no multi-turn, no
  prompt file; logs the response on stderr.
* ``crash`` — ``advanced`` that dies of SIGSEGV right after its first answer.
* ``hang`` — ``advanced`` that stops answering (never returns) at its second turn.
* ``pad`` — ``advanced`` on a backend that computes garbage, as LiteRT-LM issue #3280
  reports of Gemma 3 270M on GPU: every decoded token detokenizes to ``<pad>`` (the same
  token counts and BenchmarkInfo, so its speed looks fine).

All kinds: absl's parser (abseil-cpp absl/flags/parse.cc, internal/usage.cc): an unknown
flag is ``ERROR: Unknown command line flag 'NAME'`` and exit 1; ``--helpfull`` lists
every flag (``    --name (help); default: VALUE;``) on stdout and exits 1; ``--version``
exits 0. Before any of that, like bionic's linker (linker/linker.cpp), a stand-in
written with ``needs=`` looks for those libraries in ``LD_LIBRARY_PATH`` and, missing
one, prints ``CANNOT LINK EXECUTABLE "ARGV0": library "X.so" not found: needed by main
executable`` and exits 1.

While it runs inside the ADB device emulator a stand-in marks itself busy, so the
simulated battery drains at its busy rate. Test knobs: ``EDGEKIT_STANDIN_TURN_S`` pads
every turn to that many seconds (a slower "phone"); ``EDGEKIT_STANDIN_PAD=1`` makes the
advanced kinds answer as ``pad`` does (one phone of several with a broken backend).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

KINDS = ("advanced", "simple", "old", "crash", "hang", "pad")
PROMPT = "Please enter the prompt (or press Enter to end): "
GPU_ACCELERATOR = "libLiteRtGpuAccelerator.so"
_SEP = "-" * 50
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}

# name -> (default as absl prints it, help, defining file)
_ABSL_BUILTIN = {
    "helpfull": ("false", "show help on all flags", "absl/flags/internal/usage.cc"),
    "version": ("false", "show version and build info and exit", "absl/flags/internal/usage.cc"),
    "flagfile": ("", "comma-separated list of files to load flags from", "absl/flags/parse.cc"),
}
_SIMPLE = {
    "backend": ('"gpu"', "Executor backend to use for LLM execution (cpu, gpu, etc.)", "litert_lm_main.cc"),
    "model_path": ('""', "Model path to use for LLM execution.", "litert_lm_main.cc"),
    "input_prompt": ('""', "Input prompt to use for testing LLM execution.", "litert_lm_main.cc"),
    "input_prompt_file": ('""', "File path to the input prompt.", "litert_lm_main.cc"),
}
_OLD = {
    "backend": ("gpu", "Executor backend to use for LLM execution (cpu, gpu, etc.)", "litert_lm_main.cc"),
    "model_path": ('""', "Model path to use for LLM execution.", "litert_lm_main.cc"),
    "input_prompt": ('"What is the highest building in Paris?"', "Input prompt to use for testing LLM execution.", ""),
}
_SHARED = "runtime/engine/shared_flags.cc"
_ADVANCED = {
    "backend": ('"gpu"', "Executor backend to use for LLM execution (cpu, gpu, etc.)", "litert_lm_advanced_main.cc"),
    "model_path": ('""', "Model path to use for LLM execution.", "litert_lm_advanced_main.cc"),
    "input_prompt": ('""', "Input prompt to use for testing LLM execution.", "litert_lm_advanced_main.cc"),
    "input_prompt_file": ('""', "File path to the input prompt.", "litert_lm_advanced_main.cc"),
    "max_output_tokens": ("-1", "Maximum number of output tokens per turn.", "litert_lm_advanced_main.cc"),
    "max_num_tokens": ("0", "Maximum number of tokens or context length to use for LLM execution.", _SHARED),
    "benchmark": ("false", "Benchmark the LLM execution.", _SHARED),
    "async": ("true", "Run the LLM execution asynchronously.", _SHARED),
    "multi_turns": ("false", "If true, the command line will ask for multi-turns input.", _SHARED),
    "num_cpu_threads": (
        "0",
        "If greater than 0, the number of CPU threads to use for the LLM execution with CPU backend.",
        _SHARED,
    ),
}
_FLAGS = {
    "advanced": _ADVANCED,
    "crash": _ADVANCED,
    "hang": _ADVANCED,
    "pad": _ADVANCED,
    "simple": _SIMPLE,
    "old": _OLD,
}
_PROGRAM = {
    "advanced": "litert_lm_advanced_main",
    "crash": "litert_lm_advanced_main",
    "hang": "litert_lm_advanced_main",
    "pad": "litert_lm_advanced_main",
    "simple": "litert_lm_main",
    "old": "litert_lm_main",
}


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _log(level: str, source: str, message: str) -> None:
    """One absl log line on stderr; before absl::InitializeLog() the time reads 0000 00:00:<epoch>."""
    sys.stderr.write(f"{level}0000 00:00:{time.time():.6f} {os.getpid():>7} {source}] {message}\n")
    sys.stderr.flush()


def _check_failed(source: str, status: str) -> None:
    """ABSL_CHECK_OK(MainHelper(argc, argv)) failing: an F line, then abort (SIGABRT)."""
    _log("F", source, f"Check failed: MainHelper(argc, argv) is OK ({status})")
    signal.signal(signal.SIGABRT, signal.SIG_DFL)
    os.abort()


def _link(needs: tuple[str, ...]) -> None:
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    for lib in needs:
        if not any(Path(d, lib).is_file() for d in dirs):
            sys.stderr.write(
                f'CANNOT LINK EXECUTABLE "{sys.argv[0]}": library "{lib}" not found: needed by main executable\n'
            )
            raise _Exit(1)


def _help(kind: str) -> str:
    lines = [f"{_PROGRAM[kind]}: Warning: SetProgramUsageMessage() never called", ""]
    by_file: dict[str, list[str]] = {}
    defs = {**_FLAGS[kind], **_ABSL_BUILTIN}
    for name, (default, text, source) in sorted(defs.items()):
        src = source if "/" in source else f"runtime/engine/{source or 'litert_lm_main.cc'}"
        entry = f"    --{name} ({text}); default: {default};"
        # absl wraps at 80 columns, continuation lines indented by 6 (usage.cc FlagHelpPrettyPrinter).
        words = entry.split()
        out, line = [], "    " + words[0]
        for w in words[1:]:
            if len(line) + 1 + len(w) >= 80:
                out.append(line)
                line = "      " + w
            else:
                line += " " + w
        out.append(line)
        by_file.setdefault(src, []).extend(out)
    for src in sorted(by_file):
        lines.append(f"  Flags from {src}:")
        lines.extend(by_file[src])
        lines.append("")
    return "\n".join(lines)


def _parse(kind: str, argv: list[str]) -> dict[str, str]:
    defs = _FLAGS[kind]
    values = {name: default.strip('"') for name, (default, _, _) in defs.items()}
    for arg in argv:
        if not arg.startswith("-"):
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if name in ("helpfull", "help"):
            sys.stdout.write(_help(kind))
            sys.stdout.flush()
            raise _Exit(1)
        if name == "version":
            sys.stdout.write(f"{_PROGRAM[kind]}\n")
            raise _Exit(0)
        known = name in defs
        if not known and name.startswith("no") and name[2:] in defs and defs[name[2:]][0] in ("true", "false"):
            name, value, eq = name[2:], "false", "="
            known = True
        if not known:
            sys.stderr.write(f"ERROR: Unknown command line flag '{name}'\n")
            raise _Exit(1)
        is_bool = defs[name][0] in ("true", "false")
        if is_bool:
            if not eq:
                value = "true"
            if value.lower() not in _TRUE | _FALSE:
                sys.stderr.write(f"ERROR: Illegal value '{value}' specified for flag '{name}'\n")
                raise _Exit(1)
            value = "true" if value.lower() in _TRUE else "false"
        elif not eq:
            sys.stderr.write(f"ERROR: Missing the value for the flag '{name}'\n")
            raise _Exit(1)
        values[name] = value
    return values


def _duration(seconds: float) -> str:
    """absl::FormatDuration: `182.114ms`, `1.5s`, `2m3.5s`."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3f}".rstrip("0").rstrip(".") + "us"
    if seconds < 1:
        return f"{seconds * 1e3:.6f}".rstrip("0").rstrip(".") + "ms"
    minutes, rest = divmod(seconds, 60)
    tail = f"{rest:.6f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{tail}" if minutes else tail


def _benchmark_info(init_s: float, turns: list[tuple[int, float, int, float]]) -> str:
    """BenchmarkInfo as io_types.cc operator<< prints it (fixed, 2 decimals)."""
    phases = {"Executor": init_s * 0.8, "Init Total": init_s, "Model assets": init_s * 0.05, "Tokenizer": init_s * 0.1}
    out = ["BenchmarkInfo:", f"  Init Phases ({len(phases)}):"]
    out += [f"    - {name}: {s * 1000:.2f} ms" for name, s in sorted(phases.items())]
    ttft = 0.0
    if turns and turns[0][0] and turns[0][2]:
        ttft = turns[0][1] + turns[0][3] / turns[0][2]
    out += [_SEP, f"  Time to first token: {ttft:.2f} s", _SEP, f"  Prefill Turns (Total {len(turns)} turns):"]
    for i, (tokens, secs, _, _) in enumerate(turns, 1):
        out.append(f"    Prefill Turn {i}: Processed {tokens} tokens in {_duration(secs)} duration.")
        out.append(f"      Prefill Speed: {tokens / secs if secs else 0:.2f} tokens/sec.")
    out += [_SEP, f"  Decode Turns (Total {len(turns)} turns):"]
    for i, (_, _, tokens, secs) in enumerate(turns, 1):
        out.append(f"    Decode Turn {i}: Processed {tokens} tokens in {_duration(secs)} duration.")
        out.append(f"      Decode Speed: {tokens / secs if secs else 0:.2f} tokens/sec.")
    out += [_SEP, "  TextToTokenIds Turns (Total 0 turns):", "    No text to token ids turns recorded.", _SEP, _SEP]
    return "\n".join(out)


class _Model:
    """The host LiteRT-LM engine behind a stand-in: one conversation, greedy."""

    def __init__(self, model: str, *, threads: int | None, max_num_tokens: int | None, pad: bool = False) -> None:
        from edgekit.engine import open_engine, quiet_engine_logs

        # The stand-in is a program of its own (one _Model a run): its engine logs only
        # errors, as under edgekit's CLI.
        quiet_engine_logs()
        self.pad = pad
        self._cm = open_engine(model, threads=threads, max_num_tokens=max_num_tokens)
        t0 = time.perf_counter()
        self.engine = self._cm.__enter__()
        self.init_s = time.perf_counter() - t0
        self.session: Any = None
        self.turns: list[tuple[int, float, int, float]] = []

    def answer(self, text: str, max_output_tokens: int | None) -> Iterator[str]:
        """Stream the answer to one user turn; records (prefill tokens, s, decode tokens, s)."""
        import litert_lm

        if self.session is None:
            self.session = self.engine.create_session(
                sampler_config=litert_lm.SamplerConfig(top_k=1), max_output_tokens=max_output_tokens
            )
        started = time.monotonic()
        self.session.run_prefill([text])
        for chunk in self.session.run_decode_async():
            yield from (["<pad>"] * len(chunk.texts) if self.pad else chunk.texts)
        info = self.session.get_benchmark_info()
        pad = float(os.environ.get("EDGEKIT_STANDIN_TURN_S", "0") or 0) - (time.monotonic() - started)
        if pad > 0:
            time.sleep(pad)
        p_tok, p_tps = info.last_prefill_token_count, info.last_prefill_tokens_per_second
        d_tok, d_tps = info.last_decode_token_count, info.last_decode_tokens_per_second
        self.turns.append((p_tok, p_tok / p_tps if p_tps else 0.0, d_tok, d_tok / d_tps if d_tps else 0.0))

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
        self._cm.__exit__(None, None, None)


def _int(value: str) -> int | None:
    return int(value) if value.lstrip("-").isdigit() and int(value) > 0 else None


def _backend_ok(backend: str) -> str | None:
    """None if the backend can run here, else the absl status text the engine returns."""
    if backend == "cpu":
        return None
    if backend == "gpu":
        dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
        if any(Path(d, GPU_ACCELERATOR).is_file() for d in dirs):
            return None
        return f"NOT_FOUND: GPU accelerator library {GPU_ACCELERATOR} not found"
    return f"INVALID_ARGUMENT: Unsupported backend: {backend}"


def _run_simple(flags: dict[str, str]) -> int:
    source = "litert_lm_main.cc:231"
    if not flags["model_path"]:
        _check_failed(source, "INVALID_ARGUMENT: Model path is empty.")
    if not Path(flags["model_path"]).is_file():
        _check_failed(source, f"NOT_FOUND: {flags['model_path']} does not exist")
    problem = _backend_ok(flags["backend"])
    if problem:
        _check_failed(source, problem)
    prompt = flags["input_prompt"]
    if prompt and flags["input_prompt_file"]:
        _log("F", "litert_lm_main.cc:81", "Only one of --input_prompt and --input_prompt_file can be specified.")
        os.abort()
    if not prompt and flags["input_prompt_file"]:
        try:
            # The binary reads bytes (std::ifstream); bytes that are not UTF-8 still reach the tokenizer.
            prompt = Path(flags["input_prompt_file"]).read_bytes().decode("utf-8", "replace")
        except OSError:
            sys.stderr.write(f"Error: Could not open file {flags['input_prompt_file']}\n")
            prompt = ""
    if not prompt:
        prompt = "What is the tallest building in the world?"
    model = _Model(flags["model_path"], threads=None, max_num_tokens=None)
    try:
        sys.stdout.write(f"input_prompt: {prompt}\n")
        sys.stdout.flush()
        for text in model.answer(prompt, None):  # this main sets no output cap
            sys.stdout.write(text)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.write("\n" + _benchmark_info(model.init_s, model.turns) + "\n")
        sys.stdout.flush()
    finally:
        model.close()
    return 0


def _run_old(flags: dict[str, str]) -> int:
    source = "litert_lm_main.cc:124"
    if not flags["model_path"]:
        _check_failed(source, "INVALID_ARGUMENT: Model path is empty.")
    model = _Model(flags["model_path"], threads=4, max_num_tokens=160)
    try:
        answer = "".join(model.answer(flags["input_prompt"] or "What is the highest building in Paris?", None))
        _log("I", "litert_lm_main.cc:104", f"Response 0: {answer}")
    finally:
        model.close()
    return 0


def _run_advanced(kind: str, flags: dict[str, str]) -> int:
    source = "litert_lm_advanced_main.cc:310"
    if not flags["model_path"]:
        _check_failed(source, "INVALID_ARGUMENT: Model path is empty.")
    problem = _backend_ok(flags["backend"])
    if problem:
        _check_failed(source, problem)
    multi, is_async, bench = (flags[k] == "true" for k in ("multi_turns", "async", "benchmark"))
    _log("I", "litert_lm_lib.cc:520", f"Choose backend: {flags['backend']}")
    if bench and multi and is_async:
        _log(
            "E",
            "litert_lm_lib.cc:603",
            "Benchmark with multi-turns and async do not show results, use sync mode instead.",
        )
    model = _Model(
        flags["model_path"],
        threads=_int(flags["num_cpu_threads"]),
        max_num_tokens=_int(flags["max_num_tokens"]),
        pad=kind == "pad" or os.environ.get("EDGEKIT_STANDIN_PAD") == "1",
    )
    cap = _int(flags["max_output_tokens"])
    try:
        if not multi:
            prompt = flags["input_prompt"] or (
                Path(flags["input_prompt_file"]).read_text() if flags["input_prompt_file"] else ""
            )
            answer = "".join(model.answer(prompt, cap))
            sys.stdout.write(answer + "\n")
        else:
            turn = 0
            while True:
                sys.stdout.write(PROMPT)
                sys.stdout.flush()
                line = sys.stdin.readline()
                if not line or not line.rstrip("\n"):
                    break
                turn += 1
                if kind == "hang" and turn == 2:
                    while True:  # stops answering; only a kill ends it
                        time.sleep(3600)
                if is_async:  # SendMessageAsync with a printing callback: streamed
                    for text in model.answer(line.rstrip("\n"), cap):
                        sys.stdout.write(text)
                        sys.stdout.flush()
                    sys.stdout.write("\n")
                else:  # SendMessage, then PrintMessage(streaming=false): whole, then a newline
                    sys.stdout.write("".join(model.answer(line.rstrip("\n"), cap)) + "\n")
                sys.stdout.flush()
                if kind == "crash":
                    os.kill(os.getpid(), signal.SIGSEGV)
        if bench and not (multi and is_async):
            lines = _benchmark_info(model.init_s, model.turns).splitlines()
            _log("I", "litert_lm_lib.cc:425", lines[0])
            sys.stderr.write("".join(line + "\n" for line in lines[1:]))  # NoPrefix()
            sys.stderr.flush()
    finally:
        model.close()
    return 0


def main(kind: str, needs: tuple[str, ...] = (), argv: list[str] | None = None) -> int:
    """Run as the upstream binary `kind` stands for (see the module docstring)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        _link(needs)
        flags = _parse(kind, args)
    except _Exit as done:
        return done.code
    busy_dir = os.environ.get("EDGEKIT_EMU_DIR")
    marker = Path(busy_dir) / "busy" / str(os.getpid()) if busy_dir else None
    if marker is not None:
        marker.write_text("runner\n")
    try:
        if kind == "simple":
            return _run_simple(flags)
        if kind == "old":
            return _run_old(flags)
        return _run_advanced(kind, flags)
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)


def write_runner_standin(path: Path, kind: str = "advanced", *, needs: tuple[str, ...] = ()) -> Path:
    """Write stand-in `kind` as an executable script at `path` (runs with this Python).

    `needs`: shared libraries it must find in LD_LIBRARY_PATH, as the real binary's
    DT_NEEDED entries (e.g. libGemmaModelConstraintProvider.so).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown stand-in kind {kind!r}; one of {', '.join(KINDS)}")
    # The stand-in imports the edgekit that wrote it (the device shell's environment is not ours).
    root = str(Path(__file__).resolve().parents[3])
    path.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {root!r})\n"
        f"from edgekit.runtimes.litert_lm.runner_standin import main\nsys.exit(main({kind!r}, {tuple(needs)!r}))\n"
    )
    path.chmod(0o755)
    return path


def write_runner_folder(
    folder: Path, kind: str = "advanced", *, libs: tuple[str, ...] = (), missing: tuple[str, ...] = ()
) -> Path:
    """A runner folder like upstream's prebuilt/android_arm64/: the stand-in (needing `libs`
    and `missing`) plus a file for each of `libs`; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    name = _PROGRAM[kind]
    write_runner_standin(folder / name, kind, needs=tuple(libs) + tuple(missing))
    for lib in libs:
        (folder / lib).write_bytes(b"\x7fELF stand-in shared library " + lib.encode() + b"\n")
    return folder


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "advanced", argv=sys.argv[2:]))
