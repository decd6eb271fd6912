"""Put a model, its on-device runner and edgekit's harness on a device: verified, idempotent.

Layout under the device's work root (`/data/local/tmp/edgekit` on a phone):

    models/<sha256>/model.litertlm
    runners/<sha256>/<runner binary> + its .so files + probe.json
    harness/<sha256 of the harness files>/...
    deploys.log                       one line per deploy: time, model, runner, harness

`deploy()` is the order of the jobs, each in its own module: the runner on this computer
(edgekit.runners), the files onto the device, verified and atomic (edgekit.placement),
the smoke run (edgekit.smoke). Before anything is sent, the artifact's header is read as
its runtime reads it (edgekit.runtimes): random bytes, a text file or an empty file are
refused. A smoke run then answers one prompt; a model whose smoke run fails is
removed from the device and not logged. The phone's greedy answer is compared with this
computer's CPU engine's on the same prompt, a difference a warning naming the first
differing token.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from edgekit import runtimes
from edgekit.artifact import Artifact, sha256_file
from edgekit.device import Transport, open_device
from edgekit.device.base import Device, DeviceFacts, Execution
from edgekit.engine import NAME as HOST_ENGINE
from edgekit.errors import DeviceError, EdgekitError, InputError
from edgekit.placement import (
    Placed,
    PushProgress,
    check_shell_notes,
    check_space,
    log_deploy,
    place_chat_template,
    place_file,
    place_harness,
    place_runner,
    plan_item,
    runner_items,
)
from edgekit.probe import RunnerProbe
from edgekit.runners import check_runner, resolve_runner
from edgekit.smoke import SMOKE_PROMPT, SmokeResult, check_with_host, smoke_notes, smoke_run

CANCEL_WAIT_S = 1.0
"""After Ctrl-C, how long `deploy_many` waits for the pushes to stop before it lets the interrupt go on."""

DeviceProgress = Callable[[str, str, int, int], None]
"""`progress(serial, label, bytes_done, bytes_total)`: one device's push, among several."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeployConfig:
    """How to deploy: the runner (else EDGEKIT_RUNNER, else the one cached last time) and the smoke run."""

    runner: Path | None = None
    smoke: bool = True
    smoke_prompt: str = SMOKE_PROMPT
    smoke_max_tokens: int = 16
    smoke_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.smoke_max_tokens < 1:
            raise InputError(f"smoke max tokens must be at least 1, got {self.smoke_max_tokens}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeployResult:
    """What one deploy did on one device."""

    serial: str
    facts: DeviceFacts
    model: Placed
    runner: Placed | None
    harness: Placed
    provenance: str
    smoke: SmokeResult | None
    bytes_pushed: int
    notes: tuple[str, ...]
    probe: RunnerProbe | None = None
    """What the deployed runner speaks (None: no runner, e.g. `local`); probe.json beside it on the device."""
    shell: dict[str, bool] | None = None


def deploy(
    device: Device,
    artifact_path: Path | str,
    config: DeployConfig | None = None,
    *,
    progress: PushProgress | None = None,
) -> DeployResult:
    """Deploy `artifact_path` to `device` (see the module docstring); returns what was done.

    Raises InputError for a bad artifact or runner, DeviceError for device trouble (no
    space, wrong ABI, lost connection, a model that does not run).
    """
    config = config or DeployConfig()
    notes: list[str] = []
    artifact = Artifact.load(artifact_path)
    sha, provenance = _artifact_sha256(artifact, notes)
    # A file no runner loads is refused before anything is sent.
    runtime = runtimes.for_model(artifact.path, notes)
    if not runtime.engine_on_host and device.execution is not Execution.RUNNER:
        raise InputError(
            f"{artifact.path.name} is a GGUF: it runs on llama.cpp's llama-cli on a phone (--runner LLAMA_BIN_DIR); "
            f"{device.serial} runs {HOST_ENGINE} in this process"
        )
    runner = resolve_runner(config.runner, runtime.name) if device.execution is Execution.RUNNER else None
    facts = device.facts()
    if device.execution is Execution.RUNNER:
        runner = check_runner(device, runner, facts, notes)
    # One sha256sum per file on the device: it decides both the space needed and what to send.
    model_item = plan_item(
        device, artifact.path, ("models", sha), runtime.model_file, sha, label="model", executable=False
    )
    to_send = runner_items(device, runner) if runner is not None else []
    check_space(device, facts, [model_item, *to_send])
    shell_facts = check_shell_notes(device, notes) if device.execution is Execution.RUNNER else None

    model = place_file(device, model_item, progress)
    runner_placed = on_device = None
    if runner is not None:
        runner_placed, on_device = place_runner(device, runner, to_send, progress, runtime)
    harness = place_harness(device, progress)
    template = place_chat_template(device, runtime, artifact.path, model.remote)
    smoke = None
    if config.smoke:
        try:
            smoke = smoke_run(
                device,
                model.remote,
                on_device,
                prompt=config.smoke_prompt,
                max_tokens=config.smoke_max_tokens,
                timeout_s=config.smoke_timeout_s,
                chat_template=template,
            )
        except DeviceError as exc:
            # Not left on the device under its trusted name: the next deploy pushes and tries it again.
            device.shell(["rm", "-rf", device.path("models", sha)], check=False)
            exc.amend(" (the model was removed from the device)")  # its class and fields stay
            raise
        if on_device is not None and runtime.engine_on_host:
            smoke = check_with_host(
                artifact.path, smoke, prompt=config.smoke_prompt, max_tokens=config.smoke_max_tokens
            )
            notes += smoke_notes(smoke)
        elif on_device is not None:
            notes.append(f"the smoke answer is not compared with this computer's engine ({HOST_ENGINE} loads no GGUF)")
    log_deploy(device, sha, runner, harness)
    pushed = sum(p.size_bytes for p in (model, runner_placed, harness) if p is not None and p.pushed)
    return DeployResult(
        serial=device.serial,
        facts=facts,
        model=model,
        runner=runner_placed,
        harness=harness,
        provenance=provenance,
        smoke=smoke,
        bytes_pushed=pushed,
        notes=tuple(notes),
        probe=None if on_device is None else on_device.probe,
        shell=shell_facts,
    )


class _Cancelled(Exception):
    """Raised in a push's progress callback once Ctrl-C was pressed."""


def deploy_many(
    serials: Sequence[str],
    artifact_path: Path | str,
    config: DeployConfig | None = None,
    *,
    transport: Transport = Transport.ADB,
    progress: DeviceProgress | None = None,
    opener: Callable[[str], Device] | None = None,
) -> dict[str, DeployResult | EdgekitError]:
    """`deploy` to every device of `serials` at once, one thread each; returns each device's
    result, or the EdgekitError that stopped it (the others go on), in the order of `serials`.

    `opener` opens a serial (default: `open_device(serial, transport)`); `progress` hears every
    push. Ctrl-C (KeyboardInterrupt in the calling thread) stops the pushes and closes the
    devices, then goes on up: nothing after a stopped push (the smoke run, the deploy log) runs.
    """
    open_one = opener or (lambda serial: open_device(serial, transport))
    outcomes: dict[str, DeployResult | EdgekitError] = {}
    cancelled = threading.Event()
    opened: list[Device] = []

    def progress_for(serial: str) -> PushProgress:
        def report(label: str, done: int, total: int) -> None:
            if cancelled.is_set():  # Ctrl-C: the push stops at its next chunk
                raise _Cancelled
            if progress is not None:
                progress(serial, label, done, total)

        return report

    def worker(serial: str) -> None:
        try:
            with open_one(serial) as device:
                opened.append(device)
                outcomes[serial] = deploy(device, artifact_path, config, progress=progress_for(serial))
        except EdgekitError as exc:
            outcomes[serial] = exc
        except _Cancelled:
            pass

    # Daemon threads, not a ThreadPoolExecutor: its __exit__ (and the interpreter's exit)
    # waits for every worker, so a Ctrl-C waited for the push, the smoke run and the
    # deploy-log entry to finish. Here Ctrl-C closes each device (which ends a push under
    # way: adb's subprocess is killed, a direct link closed) and stops a push at its next
    # chunk (the progress callback raises): the partial file stays under its .part name,
    # never renamed, never logged, and nothing after it (the smoke run) starts.
    # The threads start inside the try: a Ctrl-C that comes while they start stops them too.
    threads = [threading.Thread(target=worker, args=(s,), daemon=True, name=f"deploy {s}") for s in serials]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.1)
    except KeyboardInterrupt:
        cancelled.set()
        for device in list(opened):  # a push without progress reports (adb's, off a terminal) stops here
            device.close()
        for t in threads:
            if t.ident is not None:  # started
                t.join(CANCEL_WAIT_S / len(threads))
        raise
    return {s: outcomes[s] for s in serials if s in outcomes}


def check_model_file(path: Path, notes: list[str] | None = None) -> str:
    """The name of the runtime that loads `path` (edgekit.runtimes.for_model: its header
    checked); InputError (naming what is wrong) for a file none loads; notes for what the
    user should know (a GGUF without a chat template)."""
    return runtimes.for_model(path, notes).name


def _artifact_sha256(artifact: Artifact, notes: list[str]) -> tuple[str, str]:
    """(sha256, provenance): verified against the manifest, or computed here without one."""
    if artifact.manifest is not None:
        return artifact.verify(), "manifest"
    notes.append("no manifest beside the artifact: provenance unknown (sha256 computed here)")
    return sha256_file(artifact.path), "unknown"
