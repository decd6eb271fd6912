"""What every on-device runtime gives edgekit: the `Runtime` interface and the types it speaks.

A runtime is one implementation of `Runtime`, in its own module of this package
(edgekit.runtimes lists them). Through it, and only through it, the rest of edgekit

* tells the runtime's model files apart (`is_model`, `check_model`),
* probes a binary on the device and decides how to drive it (`probe` -> RunnerProbe),
* chooses the flags for chat-app conditions (`chat_flags` -> ChatFlags),
* builds one turn's argv and stdin (`turn_command`) and what driver.sh needs to drive it
  (`driver_env`),
* reads one turn's figures and answer from what the runner printed (`turn_figures`,
  `turn_answer`, `smoke_reading`),
* and, for tests and the demo, stands in for its runners (`write_runner_standin`).

The harness (driver.sh), the sampler and the power math stay runtime-free.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Callable, Mapping
from pathlib import Path

from msgspec import UNSET, UnsetType

from edgekit.device.base import ShellResult
from edgekit.device.parsers import TurnStats


class Protocol(enum.StrEnum):
    """How the harness drives a runner (run.env's PROTOCOL, `runner.protocol` in results)."""

    MULTI_TURN = "multi_turn"
    """One runner process a conversation, turns on stdin, answers between its input prompts."""
    ONE_SHOT = "one_shot"
    """One runner process a turn, earlier turns rendered into the prompt file."""
    LLAMA_CLI = "llama_cli"
    """llama.cpp's llama-cli: one process a conversation, turns on stdin, timings on stderr."""

    @property
    def per_conversation(self) -> bool:
        """One runner process for the whole conversation (turns on stdin), not one a turn."""
        return self is not Protocol.ONE_SHOT


class Backend(enum.StrEnum):
    """Where the runner computes (--backend)."""

    CPU = "cpu"
    GPU = "gpu"
    NPU = "npu"


# What each protocol takes time to first token from (docs/battery-bench.md).
TTFT_DEVICE_CLOCK = "device clock: first answer byte after the turn was sent (the runner streams)"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunnerProbe:
    """What a runner binary said about itself when probed, and the protocol chosen from it."""

    binary: str
    flags: dict[str, str]
    protocol: Protocol
    benchmark_stream: str
    streams_answers: bool
    version: str | None
    libraries: tuple[str, ...]
    needed: tuple[str, ...] | None = None  # DT_NEEDED from the ELF header; None for a script
    runtime: str | UnsetType = UNSET
    """`Runtime.name` of the runtime the binary belongs to; UNSET in a probe.json or result
    written before a second runtime existed (edgekit.runtimes.for_probe tells it from `protocol`)."""
    commit: str | None = None
    """The runtime's source commit, where the binary names it (llama.cpp's --version)."""
    compiler: str | None = None
    """The compiler and target the binary says it was built with (llama.cpp's --version)."""
    build_options: str | None = None
    """The CPU features and threads the build reports (llama.cpp's system_info line)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChatFlags:
    """The flags to run a probed runner with, in chat-app conditions, and what differs."""

    flags: tuple[str, ...]
    conditions: tuple[str, ...]
    ttft_source: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class TurnCommand:
    """One runner process that answers one prompt: its argv after the binary, and `text`,
    which the caller writes to the prompt file: the runner's stdin when `stdin`, else named
    in `argv` (and stdin is /dev/null)."""

    argv: tuple[str, ...]
    text: str
    stdin: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class TurnFigures:
    """One turn's figures as the runner reported them; None where it did not."""

    prefill: TurnStats | None = None
    decode: TurnStats | None = None
    runner_ttft_s: float | None = None
    """Time to first token as the runner's own figures give it (used when the answer does not stream)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SmokeReading:
    """A one-prompt run's answer and its first turn's figures."""

    answer: str
    prefill_tokens: int | None
    decode_tokens: int | None
    decode_tokens_per_s: float | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunFailed:
    """A one-prompt run the runtime cannot read figures from: `runner` names the program
    for the user ("the runner", "llama-cli"), `detail` what it printed."""

    runner: str
    detail: str


Ask = Callable[[str], ShellResult]
"""Runs the binary on the device with these arguments (stdout and stderr joined); answers are cached."""


def runner_ttft(prefill: TurnStats | None, decode: TurnStats | None) -> float | None:
    """Prefill time + one decode step of the turn: time to first token from a runner's figures."""
    if prefill is None or decode is None or not prefill.tokens or not decode.tokens:
        return None
    return prefill.duration_s + decode.duration_s / decode.tokens


def tail(text: str, n: int = 2) -> str:
    """The last `n` non-empty lines of `text`, stripped, on one line."""
    return " ".join(line.strip() for line in text.strip().splitlines()[-n:] if line.strip())


class Runtime(abc.ABC):
    """One on-device runtime: its model files, its runner binaries, their protocol and output."""

    name: str
    """How results and the runner cache name it (RunnerProbe.runtime, RunnerRecord.runtime),
    and how texts name it ("the … engine", "a … bundle")."""
    key: str
    """Its name as an identifier, e.g. a JSON key (the name of its module here)."""
    model_format: str
    """What its models are, as a help text names them ("a … artifact")."""
    protocols: tuple[Protocol, ...]
    """The protocols its runners speak (RunnerProbe.protocol); no two runtimes share one."""
    model_file: str
    """The model's file name on the device (models/<sha256>/<model_file>)."""
    wanted: str
    """What a model of this runtime needs, for a refusal: "a … runner (…)"."""
    runner_folder: str
    """The folder of its runner builds, as a user is told to pass it ("…'s prebuilt/android_arm64/ folder")."""
    runner_file: str
    """Its runner binary, as a user is told to pass it ("…'s runner for android_arm64")."""
    runner_help: str
    """Which runner to pass as --runner, for a user who passed none."""
    runner_name: str
    """The name a runner binary is pushed under when its own would need quoting in a shell."""
    runner_binaries: str
    """Its runner binaries' names, as a help text lists them ("a or b")."""
    garbage_case: str | None = None
    """A known case of its backend answering garbage fast, as a message cites it (edgekit.answers)."""
    engine_on_host: bool = False
    """This computer's engine runs the runtime's models, so a smoke answer can be compared with it."""
    chat_template_file: str = "chat_template.jinja"
    """Beside the model on the device: the chat template `chat_template` gives, if any."""

    @abc.abstractmethod
    def is_model(self, path: Path) -> bool:
        """True if `path` is, by its first bytes, a model file of this runtime's format."""

    @abc.abstractmethod
    def check_model(self, path: Path, notes: list[str] | None = None) -> None:
        """InputError (naming what is wrong) for a model file the runtime would not load;
        notes for what the user should know about one it loads."""

    def chat_template(self, model: Path) -> str | None:
        """The chat template the runner must be given for `model` (one that carries none
        the runner could use); None: the model's own."""
        return None

    def unreadable_turn(self, turn: str) -> str | None:
        """Why the runner would not read `turn` (one line) as one user message ("ends in …"); None if it would."""
        return None

    def missing_backend(self, probe: RunnerProbe, backend: Backend) -> str | None:
        """Why the deployed runner cannot compute on `backend` (a library not deployed beside it); None if it can."""
        return None

    @abc.abstractmethod
    def probe(self, ask: Ask, *, binary: str, libraries: tuple[str, ...]) -> RunnerProbe | None:
        """What the binary speaks, asked of it (`ask`); None if it is none of this runtime's;
        InputError if it is one edgekit cannot drive (what it lacks, what to get instead)."""

    @abc.abstractmethod
    def refusal(self, ask: Ask, *, binary: str) -> str:
        """The message for a binary no runtime recognised, where this is the default runtime."""

    @abc.abstractmethod
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
        """Only flags the binary defines, in chat-app conditions; every way the run differs
        from those conditions is named in `conditions`."""

    @abc.abstractmethod
    def turn_command(
        self, probe: RunnerProbe, *, model: str, flags: tuple[str, ...], prompt: str, prompt_file: str
    ) -> TurnCommand:
        """The argv (after the binary) and prompt-file text that answer `prompt` (one line)
        in one runner process; `prompt_file` is where the caller puts the text."""

    @abc.abstractmethod
    def driver_env(self, protocol: Protocol) -> dict[str, str]:
        """What driver.sh needs to drive the runner with `protocol` (one of `protocols`), as
        run.env settings (driver.sh's header names them)."""

    @abc.abstractmethod
    def smoke_reading(self, probe: RunnerProbe, result: ShellResult, prompt: str) -> SmokeReading | RunFailed:
        """The answer and figures of `turn_command`'s run, or why there are none."""

    @abc.abstractmethod
    def turn_figures(
        self, protocol: Protocol, outputs: Mapping[str, str], errors: Mapping[str, str], key: str, turns: int
    ) -> tuple[TurnFigures, ...]:
        """Figures of turns 1..`turns` of conversation `key` from a run folder's out/ and
        err/ texts (keys "NNNN", one-shot turns "NNNN.K"), one per turn."""

    @abc.abstractmethod
    def turn_answer(self, protocol: Protocol, outputs: Mapping[str, str], key: str, turn: int) -> str | None:
        """Turn `turn`'s answer text as the runner printed it, None where it cannot be read."""

    def refused_turns(self, outputs: Mapping[str, str], key: str, turns: int) -> tuple[tuple[int, str], ...]:
        """The turns of conversation `key` the runner refused to answer, with why (none by default)."""
        return ()

    def write_runner_standin(self, path: Path, kind: str | None = None) -> Path:
        """For tests and the demo without a phone: an executable at `path` that behaves like
        this runtime's runner `kind` (its most capable if None) and really runs the model on
        this computer; NotImplementedError for a runtime edgekit has no stand-in for."""
        raise NotImplementedError(f"edgekit has no stand-in for {self.name}'s runners")

    def run_runner_standin(self, kind: str, argv: list[str]) -> int:
        """Stand-in `kind` run in this process with `argv`, printing on sys.stdout and sys.stderr:
        its exit status (FakeDevice answers a runner's --helpfull and --version so)."""
        raise NotImplementedError(f"edgekit has no stand-in for {self.name}'s runners")
