"""llama.cpp's `llama-cli` as an on-device runtime (commit 0c1e570): the pure parsers of what
it prints, then how edgekit probes and drives it (`LlamaCpp`).

    parse_version(stderr of --version) -> LlamaBuild | None
    missing_cli_flags(stdout of --help) -> tuple[str, ...]   is_llama_cli_help(...) -> bool
    split_answers(stdout of a conversation) -> tuple[str, ...]
    parse_turn_timings(stderr, -lv 3) -> tuple[TurnTimings, ...]
    parse_system_info(stderr, -lv 4) -> str | None
    gguf_chat_template(path) -> str | None                    gguf_add_bos(path) -> bool | None

They read a multi-turn run: one process per conversation, one user turn per stdin line:

    llama-cli -m MODEL.gguf -n N -t T -c C --temp 0 --top-k 1 --no-warmup --show-timings -lv 3 --simple-io

Source paths are relative to the llama.cpp tree vendored in the llama-cpp-python 0.3.36
sdist (see docs/llama-cpp-notes.md). What the caller must know about that run:

* stdin: one line per turn (tools/cli/cli-context.cpp `cli_context::run`,
  common/console.cpp `readline_simple`). An empty line is skipped: a fresh "> " is printed,
  with no answer and no timings. A line ending in "/" loses that "/"; a line ending in "\\"
  loses it and is joined with the next line into one turn. Lines starting with "/exit",
  "/regen", "/clear", "/read ", "/glob " are commands. Send none of these.
* `-n` caps every turn (`slot.n_predict_max`, tools/server/server-context.cpp
  `launch_slot_with_task`), a turn also ends at end-of-generation; the stderr timings
  look the same either way (`eval time … / N tokens`, N = tokens sampled, the EOG token
  included). Only `-lv 5` says why ("stopped by limit" / "stopped by EOS").
* A turn the server refuses (prompt longer than the context) prints "Error: …" on
  **stdout** as its answer (common/console.cpp `console::error` writes to stdout), a
  `[ Prompt: 0.0 t/s | Generation: 0.0 t/s ]` line, and no timings on stderr. The
  refused message stays in the conversation, so every later turn fails the same way.
* A GGUF without `tokenizer.chat_template` is still chatted with: the server falls back
  to ChatML (common/chat.cpp `common_chat_templates_init`, `CHATML_TEMPLATE_SRC`).
* stdin EOF ends the conversation: "\\n\\nExiting...\\n" and exit 0.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgekit.convert.example import CHAT_TEMPLATE, CHAT_TEMPLATE_AS
from edgekit.convert.gguf import is_gguf
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

NAME = "llama.cpp"
CONTEXT_TOKENS = 4096
"""llama-cli's -c when --max-num-tokens is not given: room for a chat-25 conversation."""

PROMPT = "> "
"""What llama-cli prints (after a newline) before it reads each user turn (cli-ui.h `ui::user_turn::read_input`)."""
CLI_COMMANDS = ("/exit", "/regen", "/clear", "/read ", "/glob ")
"""What llama-cli takes for a command, not a message, at the start of a line (cli-context.cpp)."""
REFUSED = re.compile(r"Error: (?P<why>request \(\d+ tokens\) exceeds the available context size \(\d+ tokens\))")
"""A turn's answer when the server refused it for want of context: tools/server/server-context.cpp
sends "request (%d tokens) exceeds the available context size (%d tokens), try increasing it"
(ERROR_TYPE_EXCEED_CONTEXT_SIZE), and tools/cli/cli-ui.h prints it as `console::error("Error: %s\n")`
in the answer's place (tests/captures/llama-cpp/cli-edge.stdout)."""

TIMINGS_LINE = re.compile(
    r"^\[ Prompt: (?P<prompt_tps>\S+) t/s \| Generation: (?P<generation_tps>\S+) t/s \]$", re.MULTILINE
)
"""The per-turn rates line on stdout (cli-context.cpp `cli_context::run`, `--show-timings`,
on by default): `"%.1f"` of the server's `prompt_per_second` / `predicted_per_second`,
0.0 when the turn failed."""

_EXITING = "\n\nExiting...\n"  # cli-context.cpp `cli_context::run`: ui::show_message("\n\nExiting...")
# show_info("\n[ Prompt: … ]") + "\n"; the next turn's read_input then prints "\n> ".
_TIMINGS_BLOCK = re.compile(r"\n\[ Prompt: \S+ t/s \| Generation: \S+ t/s \]\n")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # --log-colors / console colours


@dataclasses.dataclass(frozen=True, kw_only=True)
class LlamaBuild:
    """What `--version` says about a llama.cpp build (common/build-info.cpp.in `llama_print_build_info`).

    `build` is `git rev-list --count HEAD` of the source it was built from (1 for the
    sdist's shallow clone), so identify a build by `commit`. None: printed as "unknown"
    (cmake/build-info.cmake, a tree without git) or not printed.
    """

    version: str
    build: int | None
    commit: str | None
    compiler: str | None
    target: str | None


_VERSION = re.compile(r"^version: (?P<version>\S+) \(build (?P<build>-?\d+), commit (?P<commit>\S+)\)$", re.MULTILINE)
_BUILT_WITH = re.compile(r"^built with (?P<compiler>.+?) for (?P<target>.+)$", re.MULTILINE)


def _known(value: str) -> str | None:
    return None if value == "unknown" else value


def parse_version(text: str) -> LlamaBuild | None:
    """The build a `--version` run names (its stderr; common/arg.cpp "--version" calls
    `llama_print_build_info`, common/build-info.cpp.in); None if `text` has no version line."""
    match = _VERSION.search(text)
    if match is None:
        return None
    built = _BUILT_WITH.search(text, match.end())
    commit = _known(match["commit"])
    return LlamaBuild(
        version=match["version"],
        build=None if commit is None and match["build"] == "0" else int(match["build"]),
        commit=commit,
        compiler=_known(built["compiler"]) if built else None,
        target=_known(built["target"]) if built else None,
    )


CLI_FLAGS = ("--show-timings", "--simple-io", "-n", "--temp", "--top-k", "-c", "-t", "--no-warmup", "-lv")
"""The flags edgekit runs llama-cli with, each as its `--help` lists it (common/arg.cpp `common_params_parser_init`)."""


def _help_flags(text: str) -> set[str]:
    # common/arg.cpp `common_arg::to_string`: an option's first line holds its flags and value
    # hints, padded to column 40 where the help text starts (or alone on the line when the
    # flags reach column 37). A description that names another flag is not read.
    flags: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("-"):
            continue
        head = line[:37] if line[37:40] == "   " else line
        flags.update(re.findall(r"(?:^|, |\s)(--?[A-Za-z0-9][\w-]*)", head))
    return flags


def missing_cli_flags(text: str) -> tuple[str, ...]:
    """Which of CLI_FLAGS a `--help` output (stdout) does not define, in CLI_FLAGS order."""
    flags = _help_flags(text)
    return tuple(flag for flag in CLI_FLAGS if flag not in flags)


def is_llama_help(text: str) -> bool:
    """`--help` of a tool of llama.cpp's common argument parser (common/arg.cpp: the list
    opens with "----- common params -----"): llama-cli, llama-server, llama-bench…"""
    return "----- common params -----" in text


def is_llama_cli_help(text: str) -> bool:
    """True if `text` is the `--help` of a llama-cli that has every flag edgekit runs it with.

    `--show-timings` is scoped to llama-cli (common/arg.cpp `set_examples({LLAMA_EXAMPLE_CLI})`),
    so llama-completion's and llama-server's help fail this."""
    return not missing_cli_flags(text)


def split_answers(stdout: str) -> tuple[str, ...]:
    """The answer of each turn, in order, from llama-cli's stdout (`--show-timings` on).

    Framing (tools/cli/cli-context.cpp `cli_context::run`, tools/cli/cli-ui.h): after the
    banner each turn is "\\n> " (`user_turn::read_input`), the streamed answer, a "\\n" if
    the answer did not end with one (`assistant_turn::add_newline_if_needed`; none after an
    empty answer), then "\\n[ Prompt: … ]\\n" (`show_info`). Only that framing is removed, so
    an answer line starting with "> " stays in its answer; an answer that itself ended in
    "\\n" loses that one newline (the stdout is the same). A last answer with no rates line
    after it (the process died) comes back as printed so far; a "> " with nothing after it,
    or only "Exiting...", is no answer. Send no empty lines: their extra "> " reads as part
    of the next answer. A refused turn's answer is llama-cli's "Error: …" line.
    """
    start = stdout.find("\n" + PROMPT)
    if start < 0:
        return ()
    answers: list[str] = []
    pos = start + 1 + len(PROMPT)
    while True:
        block = _TIMINGS_BLOCK.search(stdout, pos)
        if block is None:
            rest = stdout[pos:]
            if rest not in ("", _EXITING):
                answers.append(rest)
            return tuple(answers)
        body = stdout[pos : block.start()]
        answers.append(body[:-1] if body.endswith("\n") else body)
        pos = block.end()
        if not stdout.startswith("\n" + PROMPT, pos):
            return tuple(answers)
        pos += 1 + len(PROMPT)


def refusal(answer: str) -> str | None:
    """Why llama-cli refused the turn this answer stands for ("request (N tokens) exceeds the
    available context size (M tokens)"), None for an answer of the model's."""
    m = REFUSED.fullmatch(answer.strip("\n").removesuffix(", try increasing it"))
    return None if m is None else m["why"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TurnTimings:
    """One turn's timings as the server slot prints them (tools/server/server-context.cpp `server_slot::print_timings`).

    `prefill.tokens`: prompt tokens processed this turn (the part of the conversation not
    reused from the KV cache). `decode.tokens`: tokens sampled, the first one included
    (it comes from the prefill's logits) and the EOG token when the turn ended on it.
    `*.tokens_per_s` is llama.cpp's printed figure; for decode it is (tokens - 1) /
    duration (tools/server/server-common.h `server_slot_stats::n_gen_tps`), not
    tokens / duration. `task` is the server task id (0, 19, 38, …: not the turn number).
    """

    task: int
    prefill: TurnStats
    decode: TurnStats


_NUM = r"(?:[\d.]+|inf|-?nan)"
_SLOT_TIMING = re.compile(
    r"slot print_timing: id +\d+ \| task (?P<task>-?\d+) \| +(?P<kind>prompt eval|eval) time = +(?P<ms>"
    + _NUM
    + r") ms"
    r" / +(?P<tokens>\d+) tokens \( *" + _NUM + r" ms per token, +(?P<tps>" + _NUM + r") tokens per second\)"
)


def parse_turn_timings(stderr: str) -> tuple[TurnTimings, ...]:
    """Each turn's prefill and decode timings from llama-cli's stderr (`-lv 3`), in order.

    Reads the `slot print_timing: id N | task T | prompt eval time = …` and `… | eval time
    = …` lines (`SLT_INF` in tools/server/server-common.h around
    `server_slot::print_timings`), with or without common/log.cpp's timestamp and level
    prefix, and pairs them by task id. A turn with only one of the two lines (killed, or
    a log line lost) is left out; a refused turn prints neither.
    """
    seen: dict[int, dict[str, TurnStats]] = {}
    for match in _SLOT_TIMING.finditer(_ANSI.sub("", stderr)):
        stats = TurnStats(
            tokens=int(match["tokens"]),
            duration_s=float(match["ms"]) / 1000.0,
            tokens_per_s=float(match["tps"]),
        )
        seen.setdefault(int(match["task"]), {})[match["kind"]] = stats
    return tuple(
        TurnTimings(task=task, prefill=parts["prompt eval"], decode=parts["eval"])
        for task, parts in seen.items()
        if "prompt eval" in parts and "eval" in parts
    )


_SYSTEM_INFO = re.compile(r"system_info: (.*?) *$", re.MULTILINE)


def parse_system_info(stderr: str) -> str | None:
    """The text after "system_info: " (threads, then each backend's features such as
    "CPU : SSE3 = 1 | … |"), or None if absent.

    Built by common/common.cpp `common_params_get_system_info` with src/llama.cpp
    `llama_print_system_info`. llama-cli logs it at trace level (`COM_TRC` in
    `common_params_print_info`), so it needs `-lv 4`; at `-lv 3` it is not printed.
    """
    match = _SYSTEM_INFO.search(_ANSI.sub("", stderr))
    return match[1] if match else None


def _gguf_field(path: Path | str, key: str) -> Any:
    from edgekit.convert.gguf import open_gguf

    field = open_gguf(Path(path)).fields.get(key)
    return None if field is None else field.contents()


def gguf_chat_template(path: Path | str) -> str | None:
    """The `tokenizer.chat_template` of GGUF file `path`, or None if it has none (llama-cli
    then chats in ChatML: common/chat.cpp `common_chat_templates_init`). InputError if no GGUF."""
    value = _gguf_field(path, "tokenizer.chat_template")
    return value if isinstance(value, str) else None


CHAT_TEMPLATE_FILE = "chat_template.jinja"
"""Beside the model on the phone: the turn format given to llama-cli for a GGUF without one."""
CHAT_TEMPLATE_FLAG = "--chat-template-file"
"""llama-cli's flag for a chat template file (common/arg.cpp)."""
_TURN_FORMATS = {"gemma", "gemma2", "gemma3", "gemma3n"}


def fallback_chat_template(path: Path | str) -> str | None:
    """The chat template to give llama-cli (--chat-template-file) for GGUF `path`: None when
    it carries its own (`tokenizer.chat_template`) or its architecture's turn format is not
    one edgekit knows; for a Gemma model without one, Gemma's turn format (the one
    edgekit's Gemma bundles carry, edgekit.convert.example), so both runtimes see the same prompts.
    llama-cli itself would fall back to ChatML, which Gemma does not know."""
    if gguf_chat_template(path) is not None:
        return None
    arch = _gguf_field(path, "general.architecture")
    if arch not in _TURN_FORMATS:
        return None
    return CHAT_TEMPLATE


def gguf_add_bos(path: Path | str) -> bool | None:
    """`tokenizer.ggml.add_bos_token` of GGUF file `path` (None if unset: llama.cpp then
    uses its per-vocab default, src/llama-vocab.cpp). InputError if no GGUF."""
    value = _gguf_field(path, "tokenizer.ggml.add_bos_token")
    return value if isinstance(value, bool) else None


def analyse_llama_probe(
    *, binary: str, help_out: str, version_out: str, system_info_out: str, libraries: tuple[str, ...]
) -> RunnerProbe:
    """A llama.cpp binary's `--help` and `--version`: llama-cli (which edgekit drives), or an
    InputError naming what it lacks (another llama.cpp tool: llama-server, llama-bench…)."""
    missing = missing_cli_flags(help_out)
    if missing:
        raise InputError(
            f"runner {binary} is a llama.cpp tool but not llama-cli (it has no {', '.join(missing)}): "
            f"pass llama.cpp's build folder (bin/, with llama-cli and its lib*.so) as --runner"
        )
    build = parse_version(version_out)
    return RunnerProbe(
        binary=binary,
        flags={},
        protocol=Protocol.LLAMA_CLI,
        benchmark_stream="stderr",
        streams_answers=True,
        version=None if build is None else build.version,
        libraries=libraries,
        runtime=NAME,
        commit=None if build is None else build.commit,
        compiler=None if build is None or not build.compiler else f"{build.compiler} for {build.target or '?'}",
        build_options=parse_system_info(system_info_out),
    )


class LlamaCpp(Runtime):
    """llama.cpp's llama-cli: one process a conversation, turns on stdin, per-turn timings on stderr.

    A binary that prints no absl flags is asked ``--help``; llama.cpp's common argument
    parser (common/arg.cpp) lists its flags there, and llama-cli is the tool that defines
    ``--show-timings`` and ``--simple-io``. Its ``--version`` names the commit
    (common/build-info.cpp.in llama_print_build_info)."""

    name = NAME
    key = "llama_cpp"
    model_format = "GGUF"
    protocols = (Protocol.LLAMA_CLI,)
    model_file = "model.gguf"
    wanted = "llama.cpp's llama-cli (a GGUF runs on it)"
    runner_folder = "llama.cpp's build folder (bin/)"
    runner_help = "for a GGUF, llama.cpp's build folder with llama-cli"
    runner_file = "llama.cpp's llama-cli for android_arm64"
    runner_name = "llama-cli"
    runner_binaries = "llama-cli"
    chat_template_file = CHAT_TEMPLATE_FILE

    def is_model(self, path: Path) -> bool:
        return is_gguf(path)

    def check_model(self, path: Path, notes: list[str] | None = None) -> None:
        """A GGUF without a chat template gets a note: llama-cli then uses its own default."""
        if gguf_chat_template(path) is None and notes is not None:
            if fallback_chat_template(path) is not None:
                notes.append(
                    f"{path.name} has no chat template (tokenizer.chat_template): edgekit gives llama-cli Gemma's "
                    f"turn format ({CHAT_TEMPLATE_FILE} beside the model), {CHAT_TEMPLATE_AS}"
                )
            else:
                notes.append(
                    f"{path.name} has no chat template (tokenizer.chat_template): llama-cli formats the turns in "
                    f"ChatML, its default (common/chat.cpp), not the model's"
                )

    def chat_template(self, model: Path) -> str | None:
        return fallback_chat_template(model)

    def unreadable_turn(self, turn: str) -> str | None:
        """common/console.cpp readline_simple: a trailing "\\" joins the next line, a trailing
        "/" is dropped; a turn opening with /exit, /regen, /clear, /read or /glob is a command
        (tools/cli/cli-context.cpp)."""
        if turn.rstrip().endswith(("\\", "/")) or turn.lstrip().startswith(CLI_COMMANDS):
            return "ends in '\\' or '/' or opens with a llama-cli command, which llama-cli would not read as a message"
        return None

    def probe(self, ask: Ask, *, binary: str, libraries: tuple[str, ...]) -> RunnerProbe | None:
        help_out = ask("--help").stdout
        if not is_llama_help(help_out):
            return None
        version = ask("--version")
        # common/common.cpp prints system_info at debug level before it loads the model: a
        # model that does not exist gets that far and no further.
        info = ask("-lv 4 -m /nonexistent.gguf < /dev/null")
        return analyse_llama_probe(
            binary=binary,
            help_out=help_out,
            version_out=version.stdout + version.stderr,
            system_info_out=info.stdout,
            libraries=libraries,
        )

    def refusal(self, ask: Ask, *, binary: str) -> str:
        return f"runner {binary} is not llama.cpp's llama-cli: its --help lists no llama.cpp flags"

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
        """llama-cli in chat-app conditions (common/arg.cpp): greedy (--temp 0 --top-k 1), the
        workload's per-turn cap (-n), the context (-c), the threads asked for (-t, else
        llama.cpp's default); --show-timings and -lv 3 for its per-turn figures, --simple-io
        for a stdin that is a FIFO. The chat template is the GGUF's own (llama-cli applies it)."""
        if backend is not Backend.CPU:
            raise InputError(f"--backend {backend}: edgekit drives llama.cpp on the CPU only (its build for the phone)")
        context = max_num_tokens or CONTEXT_TOKENS
        flags = ["-n", str(max_output_tokens), "-c", str(context), "--temp", "0", "--top-k", "1"]
        flags += ["--show-timings", "-lv", "3", "--simple-io"]
        notes = [
            f"-c {context}: llama-cli's context (KV cache) for the whole conversation"
            + ("" if max_num_tokens else " (edgekit's default; --max-num-tokens sets it)"),
            "greedy decoding (--temp 0 --top-k 1) with the GGUF's own chat template, applied by llama-cli",
        ]
        if chat_template_file is not None:
            flags += [CHAT_TEMPLATE_FLAG, chat_template_file]
            notes[-1] = (
                "greedy decoding (--temp 0 --top-k 1); the GGUF has no chat template: Gemma's turn format given "
                f"to llama-cli (--chat-template-file), {CHAT_TEMPLATE_AS}"
            )
        if threads is not None:
            flags += ["-t", str(threads)]
        else:
            notes.append("threads: llama.cpp's default (-t not given; --threads sets it)")
        return ChatFlags(flags=tuple(flags), conditions=tuple(notes), ttft_source=TTFT_DEVICE_CLOCK)

    def turn_command(
        self, probe: RunnerProbe, *, model: str, flags: tuple[str, ...], prompt: str, prompt_file: str
    ) -> TurnCommand:
        # One line, then the end of its input.
        return TurnCommand(argv=("-m", model, *flags), text=prompt + "\n", stdin=True)

    def driver_env(self, protocol: Protocol) -> dict[str, str]:
        # --simple-io's prompt follows each answer after the --show-timings line and a blank
        # one (tools/cli/cli-context.cpp); the end of its input ends the conversation.
        return {
            "MODEL_OPT": "-m",
            "PROMPT": PROMPT,
            "PROMPT_AFTER": "[[] Prompt: * t/s | Generation: * t/s []]",
            "TEMPLATE_OPT": CHAT_TEMPLATE_FLAG,
        }

    def smoke_reading(self, probe: RunnerProbe, result: ShellResult, prompt: str) -> SmokeReading | RunFailed:
        """llama-cli's answer (stdout) and its own timings of that turn (stderr, -lv 3)."""
        timings = parse_turn_timings(result.stderr)
        if result.returncode != 0 or not timings:
            errors = [line for line in result.stderr.splitlines() if " E " in f" {line}" or "error" in line]
            detail = tail("\n".join(errors) or result.stderr or result.stdout, 3)
            return RunFailed(runner="llama-cli", detail=detail or "no timings printed")
        said = split_answers(result.stdout)
        first = timings[0]
        return SmokeReading(
            answer=said[0] if said else "",
            prefill_tokens=first.prefill.tokens,
            decode_tokens=first.decode.tokens,
            decode_tokens_per_s=first.decode.tokens_per_s,
        )

    def turn_figures(
        self, protocol: Protocol, outputs: Mapping[str, str], errors: Mapping[str, str], key: str, turns: int
    ) -> tuple[TurnFigures, ...]:
        """Its "slot print_timing" lines on stderr, one pair a turn."""
        timed = parse_turn_timings(errors.get(key, ""))
        figures = []
        for k in range(1, turns + 1):
            prefill = timed[k - 1].prefill if k <= len(timed) else None
            decode = timed[k - 1].decode if k <= len(timed) else None
            figures.append(TurnFigures(prefill=prefill, decode=decode, runner_ttft_s=runner_ttft(prefill, decode)))
        return tuple(figures)

    def turn_answer(self, protocol: Protocol, outputs: Mapping[str, str], key: str, turn: int) -> str | None:
        text = outputs.get(key)
        said = () if text is None else split_answers(text)
        return said[turn - 1] if turn <= len(said) else None

    def refused_turns(self, outputs: Mapping[str, str], key: str, turns: int) -> tuple[tuple[int, str], ...]:
        """Turns its server refused for want of context (`refusal`), with why."""
        said = split_answers(outputs.get(key, ""))[:turns]
        return tuple((k, why) for k, answer in enumerate(said, 1) if (why := refusal(answer)) is not None)


RUNTIME = LlamaCpp()
