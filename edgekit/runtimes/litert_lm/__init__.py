"""LiteRT-LM's on-device runners: how edgekit probes them, drives them and reads their output.

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
the flags it defines — never from the file name. Its models are `.litertlm` bundles.

This package is the runtime's implementation, so it names LiteRT-LM and its sources:

    __init__.py        the runtime (`RUNTIME`), its runners' parsers
    bundle.py          the `.litertlm` header, read as the runtime reads it
    runner_standin.py  stand-ins for its runner binaries (edgekit.testing, the demo)
    bundle_writer.py   small `.litertlm` files written with upstream's own schema, for tests
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

from edgekit.device import parsers
from edgekit.device.base import ShellResult
from edgekit.device.parsers import TurnStats
from edgekit.errors import InputError
from edgekit.runtimes.base import (
    TTFT_DEVICE_CLOCK,
    Ask,
    Backend,
    ChatFlags,
    Protocol,
    RunFailed,
    RunnerProbe,
    Runtime,
    SmokeReading,
    TurnCommand,
    TurnFigures,
    runner_ttft,
    tail,
)
from edgekit.runtimes.litert_lm.bundle import MAGIC, read_header

NAME = "LiteRT-LM"
DOWNLOAD = (
    "download litert_lm_advanced_main (multi-turn) or a current litert_lm_main (one-shot) for android_arm64 "
    "from LiteRT-LM's GitHub releases and pass its prebuilt/android_arm64/ folder as --runner"
)
_ACCELERATORS = {Backend.GPU: "libLiteRtGpuAccelerator.so", Backend.NPU: "libLiteRtDispatch"}
TTFT_RUNNER = "runner: prefill time + one decode step, per turn (io_types.cc GetTimeToFirstToken's formula)"


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchmarkInfo:
    """LiteRT-LM's `BenchmarkInfo` block, parsed (runtime/engine/io_types.cc, operator<<).

    `ttft_s` is the runner's own figure: prefill turn 1 + one decode step of turn 1
    (io_types.cc GetTimeToFirstToken), computed, not measured; None where the block has
    no such line (older releases).
    """

    init_phases_s: dict[str, float]
    init_total_s: float | None
    ttft_s: float | None
    prefill: tuple[TurnStats, ...]
    decode: tuple[TurnStats, ...]


# The first line of a block logged with ABSL_LOG(INFO) carries absl's prefix; before
# absl::InitializeLog() (LiteRT-LM never calls it) the time reads "0000 00:00:<epoch>":
#   I0000 00:00:1795646273.922955   15775 litert_lm_lib.cc:425] BenchmarkInfo:
# The block's other lines are logged with NoPrefix() (litert_lm_lib.cc LogBenchmarkInfo).
_ABSL_PREFIX = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+(?:\.\d+)? +\d+ [^\]\s]+:\d+\] ", re.MULTILINE)
_TURN = re.compile(
    r"(Prefill|Decode) Turn (\d+): Processed (\d+) tokens in (\S+) duration\.\s*\n\s*\w+ Speed: ([\d.]+) tokens/sec"
)
_PHASE = re.compile(r"^\s+- (.+?): ([\d.]+) ms\s*$", re.MULTILINE)


def strip_absl_prefix(text: str) -> str:
    """Text with absl's log prefix (`I0000 00:00:… file.cc:N] `) removed from every line."""
    return _ABSL_PREFIX.sub("", text)


def parse_benchmark_info(text: str) -> BenchmarkInfo | None:
    """The first `BenchmarkInfo:` block in a runner's stdout or stderr (with or without
    absl's prefix); None if there is none. Init total: the `Init Total` phase (newer
    releases), the `Total init time` line (older ones), else the sum of the phases.
    """
    text = strip_absl_prefix(text)
    m = re.search(r"(?<!Aggregated )BenchmarkInfo:[ \t]*$", text, re.MULTILINE)
    if m is None:
        return None
    block = text[m.end() :]
    # The block ends at the first line that is neither indented nor a dashes separator.
    stop = re.compile(r"^[^\s-]", re.MULTILINE).search(block)
    block = block[: stop.start()] if stop else block
    phases = {name: float(ms) / 1000 for name, ms in _PHASE.findall(block)}
    total_line = re.search(r"Total init time:\s*([\d.]+)\s*ms", block)
    init_total = phases.pop("Init Total", None)
    if total_line:
        init_total = float(total_line.group(1)) / 1000
    phases.pop("Total init time", None)
    if init_total is None and phases:
        init_total = sum(phases.values())
    ttft = re.search(r"Time to first token:\s*([\d.]+)\s*s", block)
    turns: dict[str, list[TurnStats]] = {"Prefill": [], "Decode": []}
    for kind, _n, tokens, duration, speed in _TURN.findall(block):
        turns[kind].append(
            TurnStats(tokens=int(tokens), duration_s=parsers.parse_absl_duration(duration), tokens_per_s=float(speed))
        )
    return BenchmarkInfo(
        init_phases_s=phases,
        init_total_s=init_total,
        ttft_s=float(ttft.group(1)) if ttft else None,
        prefill=tuple(turns["Prefill"]),
        decode=tuple(turns["Decode"]),
    )


MULTI_TURN_PROMPT = "Please enter the prompt (or press Enter to end): "
"""What litert_lm_lib.cc RunMultiTurnConversation prints (no newline) before reading a turn."""
PROMPT_ECHO = "input_prompt: "
"""What litert_lm_main.cc prints before its prompt (then the prompt and a newline)."""


def split_multi_turn_answers(stdout: str) -> tuple[str, ...]:
    """The answers in a multi-turn runner's stdout: the text between its input prompts."""
    chunks = stdout.split(MULTI_TURN_PROMPT)[1:]
    return tuple(c.strip("\n") for c in chunks if c.strip())


def one_shot_answer(stdout: str, prompt: str) -> str:
    """The answer in the simple main's stdout: litert_lm_main.cc prints `input_prompt: ` +
    the prompt + a newline, streams the answer, then a blank line and BenchmarkInfo."""
    head = stdout.split("BenchmarkInfo:", 1)[0]
    echo = f"{PROMPT_ECHO}{prompt}\n"
    if head.startswith(echo):
        head = head[len(echo) :]
    return head.strip("\n")


def _refusal(binary: str, helpfull_rc: int, helpfull_out: str) -> str | None:
    """Why a binary whose `--helpfull` printed no absl flags cannot be driven; None if it printed some."""
    missing = parsers.parse_cannot_link(helpfull_out)
    if missing is not None:
        return (
            f"runner {binary} does not start: bionic's linker says library {missing} not found "
            f"(CANNOT LINK EXECUTABLE): pass the runner's whole folder (LiteRT-LM's prebuilt/android_arm64/, "
            f"with its .so files) as --runner"
        )
    if not parsers.parse_absl_helpfull(helpfull_out):
        return (
            f"runner {binary} printed no absl flag list for --helpfull (exit {helpfull_rc}: "
            f"{tail(helpfull_out) or 'no output'}): it is not a LiteRT-LM runner edgekit knows; {DOWNLOAD}"
        )
    return None


def analyse_probe(
    *, binary: str, helpfull_rc: int, helpfull_out: str, version_out: str, libraries: tuple[str, ...]
) -> RunnerProbe:
    """Decide from `--helpfull` output how to drive the runner; InputError (one line,
    naming the binary, what it lacks and what to get instead) if edgekit cannot."""
    why = _refusal(binary, helpfull_rc, helpfull_out)
    if why is not None:
        raise InputError(why)
    flags = parsers.parse_absl_helpfull(helpfull_out)
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
            f"(one-shot), as older LiteRT-LM releases' litert_lm_main; {DOWNLOAD}"
        )
    if "model_path" not in names:
        raise InputError(f"runner {binary} has no --model_path flag: {DOWNLOAD}")
    version = next((line.strip() for line in version_out.splitlines() if line.strip()), None)
    return RunnerProbe(
        binary=binary,
        flags={name: f.default for name, f in sorted(flags.items())},
        protocol=protocol,
        benchmark_stream=stream,
        streams_answers=streams,
        version=version,
        libraries=libraries,
        runtime=NAME,
    )


def _info(outputs: Mapping[str, str], errors: Mapping[str, str], key: str) -> BenchmarkInfo | None:
    return parse_benchmark_info(errors.get(key, "")) or parse_benchmark_info(outputs.get(key, ""))


class LiteRtLm(Runtime):
    """LiteRT-LM's runners: multi-turn (`--multi_turns --benchmark`) or one-shot (`--input_prompt_file`)."""

    name = NAME
    key = "litert_lm"
    model_format = "LiteRT"
    protocols = (Protocol.MULTI_TURN, Protocol.ONE_SHOT)
    model_file = "model.litertlm"
    wanted = "a LiteRT-LM runner (.litertlm)"
    runner_folder = "LiteRT-LM's prebuilt/android_arm64/ folder"
    runner_help = (
        "LiteRT-LM's litert_lm_advanced_main or litert_lm_main for android_arm64, or its prebuilt/android_arm64/ folder"
    )
    runner_file = "LiteRT-LM's runner for android_arm64"
    runner_name = "litert_lm_main"
    runner_binaries = "litert_lm_advanced_main or litert_lm_main"
    engine_on_host = True
    garbage_case = "LiteRT-LM issue #3280"
    """github.com/google-ai-edge/LiteRT-LM/issues/3280: Gemma 3 270M on the GPU backend emits only
    `<pad>`, and its tokens/s look fine (runner_standin's `pad` kind imitates it)."""

    def is_model(self, path: Path) -> bool:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC

    def check_model(self, path: Path, notes: list[str] | None = None) -> None:
        read_header(path)

    def missing_backend(self, probe: RunnerProbe, backend: Backend) -> str | None:
        need = _ACCELERATORS.get(backend)
        if need is None or any(lib.startswith(need) for lib in probe.libraries):
            return None
        return (
            f"--backend {backend} needs LiteRT's accelerator library ({need}*.so) beside the runner, and "
            f"{probe.binary} was deployed without it: pass the runner's prebuilt/android_arm64/ folder as --runner"
        )

    def probe(self, ask: Ask, *, binary: str, libraries: tuple[str, ...]) -> RunnerProbe | None:
        helpfull = ask("--helpfull")
        if not parsers.parse_absl_helpfull(helpfull.stdout + helpfull.stderr):
            return None
        version = ask("--version")
        return analyse_probe(
            binary=binary,
            helpfull_rc=helpfull.returncode,
            helpfull_out=helpfull.stdout + helpfull.stderr,
            version_out=version.stdout if version.returncode == 0 else "",
            libraries=libraries,
        )

    def refusal(self, ask: Ask, *, binary: str) -> str:
        helpfull = ask("--helpfull")
        why = _refusal(binary, helpfull.returncode, helpfull.stdout + helpfull.stderr)
        return why or f"runner {binary} is not a runner edgekit knows; {DOWNLOAD}"

    def chat_flags(
        self,
        probe: RunnerProbe,
        *,
        backend: Backend,
        threads: int | None,
        max_num_tokens: int | None,
        max_output_tokens: int,
        chat_template_file: str | None = None,
    ) -> ChatFlags:
        """No benchmark-mode boosting where it can be turned off, the thread count asked for,
        the workload's output cap where the binary has one."""
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
                f"the runner has no --max_output_tokens: answers are not capped at the workload's "
                f"{max_output_tokens} tokens; output lengths and decode figures are recorded as they are"
            )
        if "boost_performance" in have:
            default = have["boost_performance"].strip().strip('"').lower()
            if default in ("true", "false"):
                flags.append("--boost_performance=false")
            else:
                notes.append(
                    f"--boost_performance takes a value edgekit does not know (default "
                    f"{have['boost_performance']}): left at its default, so benchmark-mode boosting may be on"
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
                notes.append(
                    f"the runner has no --max_num_tokens: --max-num-tokens {max_num_tokens} could not be applied"
                )
        if probe.protocol == Protocol.ONE_SHOT:
            notes.append(
                "one-shot runner: one process per user turn, earlier turns rendered into the prompt; "
                "model load time per turn is reported apart and its energy attributed to load"
            )
        ttft = TTFT_DEVICE_CLOCK if probe.protocol == Protocol.MULTI_TURN and probe.streams_answers else TTFT_RUNNER
        return ChatFlags(flags=tuple(flags), conditions=tuple(notes), ttft_source=ttft)

    def turn_command(
        self, probe: RunnerProbe, *, model: str, flags: tuple[str, ...], prompt: str, prompt_file: str
    ) -> TurnCommand:
        argv = (f"--model_path={model}", *flags)
        if probe.protocol == Protocol.MULTI_TURN:
            # One user turn, then the empty line that ends RunMultiTurnConversation's input.
            return TurnCommand(argv=argv, text=prompt + "\n\n", stdin=True)
        return TurnCommand(argv=(*argv, f"--input_prompt_file={prompt_file}"), text=prompt, stdin=False)

    def driver_env(self, protocol: Protocol) -> dict[str, str]:
        if protocol == Protocol.MULTI_TURN:
            # RunMultiTurnConversation ends at an empty line.
            return {"MODEL_PREFIX": "--model_path=", "PROMPT": MULTI_TURN_PROMPT, "END_LINE": "1"}
        return {
            "MODEL_PREFIX": "--model_path=",
            "PROMPT_FILE_PREFIX": "--input_prompt_file=",
            "PROMPT_ECHO": PROMPT_ECHO,
            "ANSWER_END": "BenchmarkInfo:",
        }

    def smoke_reading(self, probe: RunnerProbe, result: ShellResult, prompt: str) -> SmokeReading | RunFailed:
        stream = result.stderr if probe.benchmark_stream == "stderr" else result.stdout
        info = parse_benchmark_info(stream) or parse_benchmark_info(result.stdout + result.stderr)
        if probe.protocol == Protocol.MULTI_TURN:
            said = split_multi_turn_answers(result.stdout)
            answer = said[0] if said else ""
        else:
            answer = one_shot_answer(result.stdout, prompt)
        if result.returncode != 0 or info is None or not info.decode:
            return RunFailed(
                runner="the runner", detail=tail(result.stderr or result.stdout, 3) or "no BenchmarkInfo printed"
            )
        return SmokeReading(
            answer=answer,
            prefill_tokens=info.prefill[0].tokens if info.prefill else None,
            decode_tokens=info.decode[0].tokens,
            decode_tokens_per_s=info.decode[0].tokens_per_s,
        )

    def turn_figures(
        self, protocol: Protocol, outputs: Mapping[str, str], errors: Mapping[str, str], key: str, turns: int
    ) -> tuple[TurnFigures, ...]:
        """Multi-turn: the conversation's one BenchmarkInfo, its k-th prefill and decode turn
        for turn k. One-shot: each turn's own block (out/ or err/ NNNN.K)."""
        figures = []
        whole = _info(outputs, errors, key) if protocol == Protocol.MULTI_TURN else None
        for k in range(1, turns + 1):
            if protocol == Protocol.MULTI_TURN:
                prefill = whole.prefill[k - 1] if whole and k <= len(whole.prefill) else None
                decode = whole.decode[k - 1] if whole and k <= len(whole.decode) else None
            else:
                info = _info(outputs, errors, f"{key}.{k}")
                prefill = info.prefill[0] if info and info.prefill else None
                decode = info.decode[0] if info and info.decode else None
            # io_types.cc GetTimeToFirstToken's formula, per turn: prefill time + one decode step.
            figures.append(TurnFigures(prefill=prefill, decode=decode, runner_ttft_s=runner_ttft(prefill, decode)))
        return tuple(figures)

    def turn_answer(self, protocol: Protocol, outputs: Mapping[str, str], key: str, turn: int) -> str | None:
        """Multi-turn: out/NNNN.txt is the runner's stdout, prompts kept (driver.sh), so the answer
        to turn k is the text after the k-th "Please enter the prompt" (litert_lm_lib.cc).
        One-shot: out/NNNN.K.txt opens with the prompt echo `input_prompt: ` + prompt + newline
        (litert_lm_main.cc); driver.sh's prompt for turn K has 2K-1 lines (each earlier turn
        a "User:" and an "Assistant:" line, answers on one line, then the new turn), and the
        answer ends at the blank line before BenchmarkInfo."""
        if protocol == Protocol.MULTI_TURN:
            text = outputs.get(key)
            if text is None or MULTI_TURN_PROMPT not in text:
                return None
            chunks = text.split(MULTI_TURN_PROMPT)[1:]
            return chunks[turn - 1] if turn <= len(chunks) else None
        text = outputs.get(f"{key}.{turn}")
        if text is None:
            return None
        head = text.split("BenchmarkInfo:", 1)[0]
        if head.startswith(PROMPT_ECHO):
            head = "".join(head.splitlines(keepends=True)[2 * turn - 1 :])
        return head

    def write_runner_standin(self, path: Path, kind: str | None = None) -> Path:
        from edgekit.runtimes.litert_lm import runner_standin

        return runner_standin.write_runner_standin(path, kind or "advanced")

    def run_runner_standin(self, kind: str, argv: list[str]) -> int:
        from edgekit.runtimes.litert_lm import runner_standin

        return runner_standin.main(kind, argv=argv)


RUNTIME = LiteRtLm()
