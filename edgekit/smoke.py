"""The smoke run: one prompt through a deployed model, and its answer judged.

The prompt travels to the device as a file, never on a command line. The phone's greedy
answer is compared with this computer's CPU engine's on the same prompt (`check_with_host`):
a backend can run fast and answer garbage (edgekit.answers: an upstream report of Gemma 3
270M on GPU emitting only `<pad>`), and a difference is a warning naming the first differing token
(`smoke_notes`).
"""

from __future__ import annotations

import dataclasses
import enum
import secrets
import shlex
import tempfile
from pathlib import Path
from typing import Any

from edgekit import answers, runtimes
from edgekit.device.base import Device, Execution, ShellResult
from edgekit.engine import NAME as HOST_ENGINE
from edgekit.errors import CommandFailed, DeviceError, EdgekitError
from edgekit.probe import Backend, chat_flags
from edgekit.runners import RunnerOnDevice
from edgekit.runtimes.base import RunFailed

SMOKE_PROMPT = "Say hello in five words."


class HostCheck(str, enum.Enum):
    """The smoke answer against this computer's CPU engine on the same prompt."""

    SAME = "same"
    DIFFERS = "differs"
    UNAVAILABLE = "unavailable"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SmokeResult:
    """The smoke run's answer and the runner's own figures; `host_check` None where the
    device runs the model with this computer's engine itself (nothing to compare)."""

    answer: str
    prefill_tokens: int | None
    decode_tokens: int | None
    decode_tokens_per_s: float | None
    host_check: HostCheck | None = None
    host_answer: str | None = None


def _runner_env(runner_dir: str, runner_remote: str) -> str:
    return f"cd {shlex.quote(runner_dir)} && LD_LIBRARY_PATH={shlex.quote(runner_dir)} {shlex.quote(runner_remote)}"


def smoke_run(
    device: Device,
    model_remote: str,
    runner: RunnerOnDevice | None = None,
    *,
    prompt: str = SMOKE_PROMPT,
    max_tokens: int = 16,
    timeout_s: float = 300.0,
    chat_template: str | None = None,
) -> SmokeResult:
    """Answer one prompt with the deployed model: through the probed runner's protocol, or
    on a device that runs models in this process, through this computer's engine (edgekit.engine). DeviceError
    (quoting the runner) if it cannot."""
    if device.execution is Execution.ENGINE or runner is None:
        return _smoke_in_process(device, model_remote, prompt, max_tokens)
    probe = runner.probe
    prompt_remote = device.path("tmp", f"smoke-{secrets.token_hex(6)}.txt")
    flags = chat_flags(
        probe,
        backend=Backend.CPU,
        threads=None,
        max_num_tokens=None,
        max_output_tokens=max_tokens,
        chat_template_file=chat_template,
    )
    prompt = " ".join(prompt.splitlines())
    runtime = runtimes.for_probe(probe)
    turn = runtime.turn_command(probe, model=model_remote, flags=flags.flags, prompt=prompt, prompt_file=prompt_remote)
    with tempfile.TemporaryDirectory(prefix="edgekit-smoke-") as tmp:
        prompt_file = Path(tmp) / "prompt.txt"
        prompt_file.write_text(turn.text)
        device.shell(["mkdir", "-p", device.path("tmp")])
        device.push(prompt_file, prompt_remote)
    stdin = shlex.quote(prompt_remote) if turn.stdin else "/dev/null"
    command = f"{_runner_env(runner.folder, runner.binary)} {shlex.join(turn.argv)} < {stdin}"
    try:
        result = device.script(command, timeout_s=timeout_s, check=False)
    finally:
        device.shell(["rm", "-f", prompt_remote], check=False)
    reading = runtime.smoke_reading(probe, result, prompt)
    if isinstance(reading, RunFailed):
        raise _smoke_failed(device, result, reading.runner, reading.detail)
    return SmokeResult(
        answer=reading.answer,
        prefill_tokens=reading.prefill_tokens,
        decode_tokens=reading.decode_tokens,
        decode_tokens_per_s=reading.decode_tokens_per_s,
    )


def _smoke_in_process(device: Device, model_path: str, prompt: str, max_tokens: int) -> SmokeResult:
    from edgekit.engine import run_prompt

    try:
        run = run_prompt(Path(model_path), prompt, max_output_tokens=max_tokens)
    except EdgekitError as exc:
        raise DeviceError(f"the model does not load: {exc}", serial=device.serial) from exc
    return SmokeResult(
        answer=run.text,
        prefill_tokens=run.prefill_tokens,
        decode_tokens=run.decode_tokens,
        decode_tokens_per_s=run.decode_tokens_per_s,
    )


def _smoke_failed(device: Device, result: ShellResult, runner: str, detail: str) -> CommandFailed:
    return CommandFailed(
        device,
        f"the model does not load or run with {runner} (exit {result.returncode}"
        f"{signal_name(result.returncode)}): {detail}",
        returncode=result.returncode,
        stderr=result.stderr,
    )


def check_with_host(model: Path, smoke: SmokeResult, *, prompt: str, max_tokens: int) -> SmokeResult:
    """`smoke` with this computer's CPU engine's greedy answer to the same prompt and how they compare
    (token by token, with the artifact's own tokenizer). UNAVAILABLE when the engine cannot run here."""
    prompt = " ".join(prompt.splitlines())
    try:
        from edgekit.engine import greedy_session, open_engine

        with open_engine(model) as engine:
            session = greedy_session(engine, max_output_tokens=max_tokens)
            try:
                session.run_prefill([prompt])
                host = "".join(session.run_decode().texts).strip("\n")
            finally:
                session.close()
            phone_ids, host_ids = engine.tokenize(smoke.answer.strip("\n")), engine.tokenize(host)
            diff = answers.first_difference(phone_ids, host_ids)
            where = None if diff is None else _difference_text(engine, diff)
    except (ImportError, EdgekitError, RuntimeError, OSError) as exc:
        return dataclasses.replace(smoke, host_check=HostCheck.UNAVAILABLE, host_answer=f"({exc})")
    if diff is None:
        return dataclasses.replace(smoke, host_check=HostCheck.SAME, host_answer=host)
    return dataclasses.replace(smoke, host_check=HostCheck.DIFFERS, host_answer=where)


def _difference_text(engine: Any, diff: answers.Difference) -> str:
    def token(t: int | None) -> str:
        return "(end of answer)" if t is None else repr(engine.detokenize([t]))

    return f"token {diff.position + 1}: the device says {token(diff.a)}, this computer {token(diff.b)}"


def smoke_notes(smoke: SmokeResult) -> list[str]:
    """What the user must hear about the smoke answer: a difference from this computer's CPU
    engine (a warning, naming the first differing token), an unavailable engine, a degenerate answer."""
    notes = []
    if smoke.host_check is HostCheck.DIFFERS:
        notes.append(
            f"warning: the smoke answer differs from this computer's CPU engine at {smoke.host_answer} "
            "(same artifact, same prompt, greedy): the device's runner or backend may compute wrong answers"
        )
    elif smoke.host_check is HostCheck.UNAVAILABLE:
        notes.append(
            f"this computer's {HOST_ENGINE} CPU engine could not run the artifact {smoke.host_answer}: "
            "the smoke answer was not compared with it"
        )
    kind = answers.classify_answer(smoke.answer)
    if kind is not None:
        notes.append(f"warning: the smoke answer is degenerate ({kind.value}): {smoke.answer[:60]!r}")
    return notes


def signal_name(returncode: int) -> str:
    """`, SIGSEGV` for a shell exit status 139 etc.; 137 (SIGKILL) says "killed, likely out of memory"."""
    if returncode == 137:
        return ", SIGKILL: killed, likely out of memory (the low-memory killer)"
    if 128 < returncode < 160:
        import signal

        try:
            return f", {signal.Signals(returncode - 128).name}"
        except ValueError:
            return f", signal {returncode - 128}"
    return ""
