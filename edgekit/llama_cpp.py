"""llama.cpp's own binaries as a runner: what they print, parsed (commit 0c1e570 read and run).

edgekit drives `llama-cli` (tools/cli/cli.cpp) on the phone: one process a conversation,
one user turn a line on stdin, the GGUF's chat template applied by llama-cli itself, and
per-turn figures from llama.cpp's own timings. (`llama-completion` was not chosen: at this
commit its asynchronous log is not flushed when main returns, common/log.cpp
common_log_main, so its closing timings are lost in about a third of runs; llama-cli
prints each turn's timings while the process still runs.) docs/llama-cpp-notes.md has
the commands and captures this module was written from.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from edgekit.device.parsers import TurnStats
from edgekit.errors import InputError

GGUF_MAGIC = b"GGUF"
PROMPT = "> "
"""What llama-cli prints (no newline) before it reads a user turn (tools/cli/cli.cpp, --simple-io)."""
TIMINGS_LINE = re.compile(r"^\[ Prompt: [0-9.]+ t/s \| Generation: [0-9.]+ t/s \]$", re.MULTILINE)
"""--show-timings' line after each answer (tools/cli/cli-context.cpp)."""
_CLI_FLAGS = ("--show-timings", "--simple-io", "--predict", "--temp", "--top-k", "--ctx-size", "--threads")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GgufModel:
    """What a GGUF's header says that deploy and the runner need."""

    architecture: str | None
    chat_template: str | None
    add_bos: bool | None


def read_gguf(path: Path) -> GgufModel:
    """The header of GGUF file `path` (gguf-py's reader, no tensor data loaded); InputError
    (naming the file) when llama.cpp would not load it: truncated, or not a GGUF."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except (ValueError, IndexError, OSError, KeyError) as exc:
        raise InputError(f"{path} is a truncated or corrupt GGUF file ({exc}): re-download or re-convert it") from exc

    def field(key: str) -> object:
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    arch, template, bos = (
        field("general.architecture"),
        field("tokenizer.chat_template"),
        field("tokenizer.ggml.add_bos_token"),
    )
    return GgufModel(
        architecture=arch if isinstance(arch, str) else None,
        chat_template=template if isinstance(template, str) and template.strip() else None,
        add_bos=bos if isinstance(bos, bool) else None,
    )


def is_llama_help(text: str) -> bool:
    """`--help` of a tool built on llama.cpp's common argument parser (common/arg.cpp
    common_params_parser_init: the list opens with "----- common params -----")."""
    return "----- common params -----" in text


def missing_cli_flags(help_text: str) -> tuple[str, ...]:
    """The flags edgekit drives llama-cli with that `help_text` does not list (llama-cli's
    own: --show-timings, --simple-io; the common ones it needs)."""
    return tuple(f for f in _CLI_FLAGS if not re.search(rf"(^|[\s,]){re.escape(f)}([\s,=]|$)", help_text, re.M))


@dataclasses.dataclass(frozen=True, kw_only=True)
class LlamaBuild:
    """What `--version` says (common/build-info.cpp.in llama_print_build_info, on stderr)."""

    version: str
    build: int | None
    commit: str | None
    compiler: str | None
    target: str | None


def parse_version(text: str) -> LlamaBuild | None:
    """`version: 0.5.0-dev (build 1, commit 0c1e570)` / `built with GNU 12.2.0 for Linux x86_64`."""
    m = re.search(r"^version: (\S+) \(build (\d+|unknown), commit (\w+)\)", text, re.MULTILINE)
    if m is None:
        m2 = re.search(r"^version: (\S+)", text, re.MULTILINE)
        if m2 is None:
            return None
        return LlamaBuild(version=m2.group(1), build=None, commit=None, compiler=None, target=None)
    built = re.search(r"^built with (.+) for (.+)$", text, re.MULTILINE)
    return LlamaBuild(
        version=m.group(1),
        build=int(m.group(2)) if m.group(2).isdigit() else None,
        commit=None if m.group(3) == "unknown" else m.group(3),
        compiler=built.group(1).strip() if built else None,
        target=built.group(2).strip() if built else None,
    )


def split_answers(stdout: str) -> tuple[str, ...]:
    """Each turn's answer in llama-cli's stdout: after a "> " prompt, up to the blank line
    and the --show-timings line that close it; a last answer cut off (the process died)
    runs to the end. The banner before the first prompt is not an answer."""
    start = stdout.find("\n" + PROMPT)
    if start < 0:
        return ()
    rest = stdout[start + 1 + len(PROMPT) :]
    answers = []
    while True:
        m = TIMINGS_LINE.search(rest)
        if m is None:
            tail = rest.split("\n\nExiting...", 1)[0]
            if tail.strip():
                answers.append(tail.rstrip("\n"))
            break
        answers.append(rest[: m.start()].rstrip("\n"))
        rest = rest[m.end() :]
        nxt = rest.find("\n" + PROMPT)
        if nxt < 0:
            break
        rest = rest[nxt + 1 + len(PROMPT) :]
    return tuple(answers)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TurnTimings:
    """One turn's figures as llama.cpp's server slot prints them (tools/server/server-context.cpp
    print_timings: "prompt eval time = X ms / N tokens", "eval time = Y ms / M tokens")."""

    task: int
    prefill: TurnStats
    decode: TurnStats


_TIMING = re.compile(
    r"slot print_timing: id +\d+ \| task (\d+) \| +(prompt eval|eval) time = +([0-9.]+) ms / +(\d+) tokens"
)


def parse_turn_timings(stderr: str) -> tuple[TurnTimings, ...]:
    """The per-turn timings in llama-cli's stderr (-lv 3), in order: a turn is a task with
    both lines."""
    seen: dict[int, dict[str, tuple[float, int]]] = {}
    for m in _TIMING.finditer(stderr):
        seen.setdefault(int(m.group(1)), {})[m.group(2)] = (float(m.group(3)) / 1000.0, int(m.group(4)))
    out = []
    for task, parts in seen.items():
        if "prompt eval" in parts and "eval" in parts:
            (ps, pn), (ds, dn) = parts["prompt eval"], parts["eval"]
            out.append(
                TurnTimings(
                    task=task,
                    prefill=TurnStats(tokens=pn, duration_s=ps, tokens_per_s=pn / ps if ps > 0 else 0.0),
                    decode=TurnStats(tokens=dn, duration_s=ds, tokens_per_s=dn / ds if ds > 0 else 0.0),
                )
            )
    return tuple(out)


def parse_system_info(stderr: str) -> str | None:
    """llama.cpp's `system_info:` line (src/llama.cpp llama_print_system_info via
    common/common.cpp): threads and the CPU features the build uses, e.g. "AVX2 = 1"."""
    m = re.search(r"system_info: (.+)$", stderr, re.MULTILINE)
    return m.group(1).strip() if m else None
