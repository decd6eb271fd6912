"""What an on-device LiteRT-LM runner speaks, asked of the binary itself, and how to drive it.

LiteRT-LM's runners differ between revisions (google-ai-edge/LiteRT-LM):

* ``litert_lm_advanced_main`` (runtime/engine/litert_lm_advanced_main.cc + litert_lm_lib.cc,
  flags in shared_flags.cc) — and older releases' ``litert_lm_main`` built the same way —
  read turns on stdin with ``--multi_turns`` and log BenchmarkInfo with ``ABSL_LOG(INFO)``
  on **stderr** with ``--benchmark``; multi-turn benchmark figures only in sync mode
  (``--async=false``, litert_lm_lib.cc CreateEngineSettings);
* the newer, self-contained ``litert_lm_main`` (runtime/engine/litert_lm_main.cc, 2026)
  defines only ``--backend``, ``--model_path``, ``--input_prompt``, ``--input_prompt_file``,
  runs one prompt and prints BenchmarkInfo on **stdout**;
* ``--boost_performance`` exists, and with which type, in some revisions only.

So deploy runs the pushed runner with ``--helpfull`` (absl prints every flag and exits 1:
abseil-cpp absl/flags/internal/usage.cc) and ``--version``, and chooses the protocol from
the flags it defines — never from the file name.

A GGUF runs on llama.cpp's own ``llama-cli`` (tools/cli, edgekit.llama_cpp): one process per
conversation, turns on stdin, per-turn timings on stderr. A binary that prints no absl
flags is asked ``--help``; llama.cpp's common argument parser (common/arg.cpp) lists its
flags there, and llama-cli is the tool that defines ``--show-timings`` and ``--simple-io``.
Its ``--version`` names the commit (common/build-info.cpp.in llama_print_build_info).
"""

from __future__ import annotations

import dataclasses
import enum
import shlex
import tempfile
from pathlib import Path

from edgekit import llama_cpp
from edgekit._typed import to_json
from edgekit.device import parsers
from edgekit.device.base import Device, ShellResult
from edgekit.errors import InputError


class Protocol(enum.StrEnum):
    """How the harness drives a runner (run.env's PROTOCOL, `runner.protocol` in results)."""

    MULTI_TURN = "multi_turn"
    """One runner process a conversation, turns on stdin (litert_lm_advanced_main --multi_turns)."""
    ONE_SHOT = "one_shot"
    """One runner process a turn, earlier turns rendered into the prompt (litert_lm_main)."""
    LLAMA_CLI = "llama_cli"
    """llama.cpp's llama-cli: one process a conversation, turns on stdin, timings on stderr."""


class Backend(enum.StrEnum):
    """Where the runner computes (--backend; LiteRT-LM's names)."""

    CPU = "cpu"
    GPU = "gpu"
    NPU = "npu"


LITERT_LM = "LiteRT-LM"
LLAMA_CPP = "llama.cpp"
LLAMA_CONTEXT_TOKENS = 4096
"""llama-cli's -c when --max-num-tokens is not given: room for a chat-25 conversation."""
PROBE_TIMEOUT_S = 60.0
_DOWNLOAD = (
    "download litert_lm_advanced_main (multi-turn) or a current litert_lm_main (one-shot) for android_arm64 "
    "from LiteRT-LM's GitHub releases and pass its prebuilt/android_arm64/ folder as --runner"
)
# What each protocol takes time to first token from (docs/battery-bench.md).
TTFT_DEVICE_CLOCK = "device clock: first answer byte after the turn was sent (the runner streams)"
TTFT_RUNNER = "runner: prefill time + one decode step, per turn (io_types.cc GetTimeToFirstToken's formula)"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunnerProbe:
    """What `--helpfull` / `--version` said about a runner, and the protocol chosen from it."""

    binary: str
    flags: dict[str, str]
    protocol: Protocol
    benchmark_stream: str
    streams_answers: bool
    version: str | None
    libraries: tuple[str, ...]
    needed: tuple[str, ...] | None = None  # DT_NEEDED from the ELF header; None for a script
    runtime: str = LITERT_LM
    commit: str | None = None
    """The runtime's source commit, where the binary names it (llama.cpp's --version)."""
    compiler: str | None = None
    """The compiler and target the binary says it was built with (llama.cpp's --version)."""
    build_options: str | None = None
    """The CPU features and threads the build reports (llama.cpp's system_info line)."""


def _tail(text: str, n: int = 2) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines()[-n:] if line.strip())


def analyse_probe(
    *, binary: str, helpfull_rc: int, helpfull_out: str, version_out: str, libraries: tuple[str, ...]
) -> RunnerProbe:
    """Decide from `--helpfull` output how to drive the runner; InputError (one line,
    naming the binary, what it lacks and what to get instead) if edgekit cannot."""
    missing = parsers.parse_cannot_link(helpfull_out)
    if missing is not None:
        raise InputError(
            f"runner {binary} does not start: bionic's linker says library {missing} not found "
            f"(CANNOT LINK EXECUTABLE): pass the runner's whole folder (LiteRT-LM's prebuilt/android_arm64/, "
            f"with its .so files) as --runner"
        )
    flags = parsers.parse_absl_helpfull(helpfull_out)
    if not flags:
        raise InputError(
            f"runner {binary} printed no absl flag list for --helpfull (exit {helpfull_rc}: "
            f"{_tail(helpfull_out) or 'no output'}): it is not a LiteRT-LM runner edgekit knows; {_DOWNLOAD}"
        )
    names = set(flags)
    if {"multi_turns", "benchmark"} <= names:
        protocol, stream = Protocol.MULTI_TURN, "stderr"
        # Sync mode prints each answer whole (litert_lm_lib.cc PrintMessage, streaming=false).
        streams = "async" not in names
    elif "input_prompt_file" in names:
        protocol, stream, streams = Protocol.ONE_SHOT, "stdout", True
    else:
        lacks = "--multi_turns" if "multi_turns" not in names else "--benchmark"
        raise InputError(
            f"runner {binary} cannot be driven: it has neither {lacks} (multi-turn) nor --input_prompt_file "
            f"(one-shot), as older LiteRT-LM releases' litert_lm_main; {_DOWNLOAD}"
        )
    if "model_path" not in names:
        raise InputError(f"runner {binary} has no --model_path flag: {_DOWNLOAD}")
    version = next((line.strip() for line in version_out.splitlines() if line.strip()), None)
    return RunnerProbe(
        binary=binary,
        flags={name: f.default for name, f in sorted(flags.items())},
        protocol=protocol,
        benchmark_stream=stream,
        streams_answers=streams,
        version=version,
        libraries=libraries,
    )


def analyse_llama_probe(
    *, binary: str, help_out: str, version_out: str, system_info_out: str, libraries: tuple[str, ...]
) -> RunnerProbe:
    """A llama.cpp binary's `--help` and `--version`: llama-cli (which edgekit drives), or an
    InputError naming what it lacks (another llama.cpp tool: llama-server, llama-bench…)."""
    missing = llama_cpp.missing_cli_flags(help_out)
    if missing:
        raise InputError(
            f"runner {binary} is a llama.cpp tool but not llama-cli (it has no {', '.join(missing)}): "
            f"pass llama.cpp's build folder (bin/, with llama-cli and its lib*.so) as --runner"
        )
    build = llama_cpp.parse_version(version_out)
    return RunnerProbe(
        binary=binary,
        flags={},
        protocol=Protocol.LLAMA_CLI,
        benchmark_stream="stderr",
        streams_answers=True,
        version=None if build is None else build.version,
        libraries=libraries,
        runtime=LLAMA_CPP,
        commit=None if build is None else build.commit,
        compiler=None if build is None or not build.compiler else f"{build.compiler} for {build.target or '?'}",
        build_options=llama_cpp.parse_system_info(system_info_out),
    )


def probe_runner(
    device: Device, runner_dir: str, binary: str, libraries: tuple[str, ...], needed: tuple[str, ...] | None = None
) -> RunnerProbe:
    """Run `runner_dir/binary --helpfull` and `--version` on the device (LD_LIBRARY_PATH =
    the runner's folder) and analyse them; a binary without absl's flag list is asked
    `--help` as a llama.cpp tool. Stores probe.json beside the runner."""
    d = shlex.quote(runner_dir)
    exe = shlex.quote(f"{runner_dir}/{binary}")
    # A runner that hangs even here is stopped on the device (toybox `timeout`, where the
    # shell has it) rather than leaving the connection waiting.
    limit = int(PROBE_TIMEOUT_S / 2)

    def ask(flag: str) -> ShellResult:
        cmd = f"{exe} {flag} 2>&1"
        script = (
            f"cd {d} && export LD_LIBRARY_PATH={d} && "
            f"if command -v timeout >/dev/null 2>&1; then timeout {limit} {cmd}; else {cmd}; fi"
        )
        return device.script(script, timeout_s=PROBE_TIMEOUT_S, check=False)

    helpfull = ask("--helpfull")
    version = ask("--version")
    version_out = version.stdout if version.returncode == 0 else ""
    help_out = ""
    if not parsers.parse_absl_helpfull(helpfull.stdout + helpfull.stderr):
        help_out = ask("--help").stdout
    if llama_cpp.is_llama_help(help_out):
        # common/common.cpp prints system_info at debug level before it loads the model: a
        # model that does not exist gets that far and no further.
        info = ask("-lv 4 -m /nonexistent.gguf < /dev/null")
        probe = analyse_llama_probe(
            binary=binary,
            help_out=help_out,
            version_out=version.stdout + version.stderr,
            system_info_out=info.stdout,
            libraries=libraries,
        )
    else:
        probe = analyse_probe(
            binary=binary,
            helpfull_rc=helpfull.returncode,
            helpfull_out=helpfull.stdout + helpfull.stderr,
            version_out=version_out,
            libraries=libraries,
        )
    probe = dataclasses.replace(probe, needed=needed)
    with tempfile.TemporaryDirectory(prefix="edgekit-probe-") as tmp:
        local = Path(tmp) / "probe.json"
        local.write_text(to_json(probe))
        device.push(local, f"{runner_dir}/probe.json")
    return probe


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChatFlags:
    """The flags to run a probed runner with, in chat-app conditions, and what differs."""

    flags: tuple[str, ...]
    conditions: tuple[str, ...]
    ttft_source: str


def chat_flags(
    probe: RunnerProbe,
    *,
    backend: Backend,
    threads: int | None,
    max_num_tokens: int | None,
    max_output_tokens: int,
    chat_template_file: str | None = None,
) -> ChatFlags:
    """Only flags the binary defines: no benchmark-mode boosting where it can be turned off,
    the thread count asked for, the workload's output cap where the binary has one. Every
    way the run differs from those conditions is named in `conditions`."""
    if probe.protocol == Protocol.LLAMA_CLI:
        return _llama_chat_flags(
            backend=backend,
            threads=threads,
            max_num_tokens=max_num_tokens,
            max_output_tokens=max_output_tokens,
            chat_template_file=chat_template_file,
        )
    have = probe.flags
    flags = [f"--backend={backend}"]
    notes: list[str] = []
    if probe.protocol == Protocol.MULTI_TURN:
        flags += ["--multi_turns", "--benchmark"]
        # google-ai-edge/LiteRT-LM 0c158988 runtime/engine/litert_lm_lib.cc CreateEngineSettings sets
        # SetSingleThreadedExecution(true) with --benchmark (older revisions, e.g. 8e126ae5, do not);
        # engine_settings.h (0d43b552) says what that is, and core/engine_advanced_impl.cc (3311ab21)
        # then picks SerialExecutionManager over ThreadedExecutionManager and its task thread pool.
        # The same function puts --num_cpu_threads in the CPU backend's config either way.
        notes.append(
            "--benchmark: needed for per-turn figures; recent litert_lm_lib.cc revisions then set "
            "SetSingleThreadedExecution, so the engine runs its tasks (prefill, decode) in one thread "
            'instead of its task thread pool (runtime/engine/engine_settings.h: "typically enabled when '
            'running in Wasm"); the CPU backend computes with the same threads as without it '
            "(--num_cpu_threads or its default): the figures are not single-core"
        )
        if "async" in have:
            flags.append("--async=false")
            notes.append("--async=false: BenchmarkInfo is shown for multi-turn runs in sync mode only")
    if "max_output_tokens" in have:
        flags.append(f"--max_output_tokens={max_output_tokens}")
    else:
        notes.append(
            f"the runner has no --max_output_tokens: answers are not capped at the workload's {max_output_tokens} "
            f"tokens; output lengths and decode figures are recorded as they are"
        )
    if "boost_performance" in have:
        default = have["boost_performance"].strip().strip('"').lower()
        if default in ("true", "false"):
            flags.append("--boost_performance=false")
        else:
            notes.append(
                f"--boost_performance takes a value edgekit does not know (default {have['boost_performance']}): "
                f"left at its default, so benchmark-mode boosting may be on"
            )
    if threads is not None:
        if "num_cpu_threads" in have:
            flags.append(f"--num_cpu_threads={threads}")
        else:
            notes.append(f"the runner has no --num_cpu_threads: --threads {threads} could not be applied")
    if max_num_tokens is not None:
        if "max_num_tokens" in have:
            flags.append(f"--max_num_tokens={max_num_tokens}")
        else:
            notes.append(f"the runner has no --max_num_tokens: --max-num-tokens {max_num_tokens} could not be applied")
    if probe.protocol == Protocol.ONE_SHOT:
        notes.append(
            "one-shot runner: one process per user turn, earlier turns rendered into the prompt; "
            "model load time per turn is reported apart and its energy attributed to load"
        )
    ttft = TTFT_DEVICE_CLOCK if probe.protocol == Protocol.MULTI_TURN and probe.streams_answers else TTFT_RUNNER
    return ChatFlags(flags=tuple(flags), conditions=tuple(notes), ttft_source=ttft)


def _llama_chat_flags(
    *,
    backend: Backend,
    threads: int | None,
    max_num_tokens: int | None,
    max_output_tokens: int,
    chat_template_file: str | None,
) -> ChatFlags:
    """llama-cli in chat-app conditions (common/arg.cpp): greedy (--temp 0 --top-k 1), the
    workload's per-turn cap (-n), the context (-c), the threads asked for (-t, else
    llama.cpp's default); --show-timings and -lv 3 for its per-turn figures, --simple-io
    for a stdin that is a FIFO. The chat template is the GGUF's own (llama-cli applies it)."""
    if backend is not Backend.CPU:
        raise InputError(f"--backend {backend}: edgekit drives llama.cpp on the CPU only (its build for the phone)")
    context = max_num_tokens or LLAMA_CONTEXT_TOKENS
    flags = ["-n", str(max_output_tokens), "-c", str(context), "--temp", "0", "--top-k", "1"]
    flags += ["--show-timings", "-lv", "3", "--simple-io"]
    notes = [
        f"-c {context}: llama-cli's context (KV cache) for the whole conversation"
        + ("" if max_num_tokens else " (edgekit's default; --max-num-tokens sets it)"),
        "greedy decoding (--temp 0 --top-k 1) with the GGUF's own chat template, applied by llama-cli",
    ]
    if chat_template_file is not None:
        flags += ["--chat-template-file", chat_template_file]
        notes[-1] = (
            "greedy decoding (--temp 0 --top-k 1); the GGUF has no chat template: Gemma's turn format given to "
            "llama-cli (--chat-template-file), as LiteRT-LM applies to Gemma models"
        )
    if threads is not None:
        flags += ["-t", str(threads)]
    else:
        notes.append("threads: llama.cpp's default (-t not given; --threads sets it)")
    return ChatFlags(flags=tuple(flags), conditions=tuple(notes), ttft_source=TTFT_DEVICE_CLOCK)
