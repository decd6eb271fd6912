"""What an on-device runner speaks, asked of the binary itself, and how to drive it.

`probe_runner` runs the pushed binary on the device and asks each runtime (edgekit.runtimes,
in order) whether it is one of its runners; the protocol is chosen from what the binary
says about itself — never from its file name. A binary no runtime recognises is refused
with the default runtime's message. `chat_flags` then asks the binary's runtime for the
flags of a run in chat-app conditions.
"""

from __future__ import annotations

import dataclasses
import shlex
import tempfile
from pathlib import Path

from edgekit import runtimes
from edgekit._typed import to_json
from edgekit.device.base import Device, ShellResult
from edgekit.errors import InputError
from edgekit.runtimes.base import TTFT_DEVICE_CLOCK, Backend, ChatFlags, Protocol, RunnerProbe

__all__ = ["TTFT_DEVICE_CLOCK", "Backend", "ChatFlags", "Protocol", "RunnerProbe", "chat_flags", "probe_runner"]

PROBE_TIMEOUT_S = 60.0


def probe_runner(
    device: Device, runner_dir: str, binary: str, libraries: tuple[str, ...], needed: tuple[str, ...] | None = None
) -> RunnerProbe:
    """Ask `runner_dir/binary` on the device (LD_LIBRARY_PATH = the runner's folder) what it
    speaks, one runtime after another; InputError if no runtime can drive it. Stores
    probe.json beside the runner."""
    d = shlex.quote(runner_dir)
    exe = shlex.quote(f"{runner_dir}/{binary}")
    # A runner that hangs even here is stopped on the device (toybox `timeout`, where the
    # shell has it) rather than leaving the connection waiting.
    limit = int(PROBE_TIMEOUT_S / 2)
    asked: dict[str, ShellResult] = {}

    def ask(args: str) -> ShellResult:
        if args not in asked:
            cmd = f"{exe} {args} 2>&1"
            script = (
                f"cd {d} && export LD_LIBRARY_PATH={d} && "
                f"if command -v timeout >/dev/null 2>&1; then timeout {limit} {cmd}; else {cmd}; fi"
            )
            asked[args] = device.script(script, timeout_s=PROBE_TIMEOUT_S, check=False)
        return asked[args]

    for runtime in runtimes.RUNTIMES:
        probe = runtime.probe(ask, binary=binary, libraries=libraries)
        if probe is not None:
            break
    else:
        raise InputError(runtimes.DEFAULT.refusal(ask, binary=binary))
    probe = dataclasses.replace(probe, needed=needed)
    with tempfile.TemporaryDirectory(prefix="edgekit-probe-") as tmp:
        local = Path(tmp) / "probe.json"
        local.write_text(to_json(probe))
        device.push(local, f"{runner_dir}/probe.json")
    return probe


def chat_flags(
    probe: RunnerProbe,
    *,
    backend: Backend,
    threads: int | None,
    max_num_tokens: int | None,
    max_output_tokens: int,
    chat_template_file: str | None = None,
) -> ChatFlags:
    """The flags the probed runner gets in chat-app conditions, from its runtime: only flags
    the binary defines, the thread count asked for, the workload's output cap where the
    binary has one; every way the run differs from those conditions is named in `conditions`."""
    return runtimes.for_probe(probe).chat_flags(
        probe,
        backend=backend,
        threads=threads,
        max_num_tokens=max_num_tokens,
        max_output_tokens=max_output_tokens,
        chat_template_file=chat_template_file,
    )
