"""`edgekit deploy`: model + runner + harness onto one or more devices, verified and idempotent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, DownloadColumn, TextColumn, TransferSpeedColumn

from edgekit import runtimes
from edgekit._typed import to_data
from edgekit.commands._common import (
    adb_server_option,
    device_option,
    human_bytes,
    remember_runner_of,
    transport_option,
)
from edgekit.commands.output import Output
from edgekit.device import AdbServer, Transport, resolve_devices
from edgekit.errors import EdgekitError, without_serial


def _summary(result: Any) -> str:
    def part(label: str, placed: Any) -> str:
        if placed is None:
            return ""
        verb = f"pushed {human_bytes(placed.size_bytes)}" if placed.pushed else "already there (verified), not sent"
        return f"{label} {verb}"

    facts = result.facts
    who = ", ".join(
        x for x in (facts.model, f"Android {facts.android_release}" if facts.android_release else None) if x
    )
    parts = [
        p for p in (part("model", result.model), part("runner", result.runner), part("harness", result.harness)) if p
    ]
    line = f"✓ {result.serial}{f' ({who})' if who else ''}: " + "; ".join(parts)
    if result.smoke is not None:
        s = result.smoke
        speed = f" at {s.decode_tokens_per_s:.1f} tok/s" if s.decode_tokens_per_s else ""
        line += f"; smoke run answered ({s.decode_tokens} tokens{speed})"
        if s.host_check is not None and s.host_check.value == "same":
            line += ", the same answer as this computer's CPU engine"
    if result.probe is not None:
        line += f"; runner speaks {result.probe.protocol.replace('_', '-')}"
    return line


_HELP = f"""Put ARTIFACT (.litertlm, or a .gguf for llama.cpp), the on-device runner and edgekit's harness
on the device, verify every file's sha256 there, probe what the runner speaks (multi-turn or
one-shot), and answer one prompt with it, compared with this computer's CPU engine's
answer (a difference is a warning naming the first differing token).

A file that is not a {runtimes.DEFAULT.name} bundle (its header) is refused before anything is
sent, --no-smoke or not; a model whose smoke run fails is removed from the device.

Files live at content-addressed paths under /data/local/tmp/edgekit; a second deploy of
the same files sends nothing. An artifact without a manifest (e.g. a published
.litertlm) deploys with provenance unknown; one whose manifest does not match it is
refused.
"""
"""The command's help (click dedents it as it does a docstring)."""


@click.command(
    "deploy",
    help=_HELP,
    short_help="Model + runner + harness onto devices, verified, then a smoke run.",
    epilog="""\b
Examples:
  edgekit deploy --runner ~/Downloads/android_arm64/ gemma3-270m-int4.litertlm
  edgekit deploy --device 192.168.1.20:5555 --transport direct model.litertlm
  edgekit deploy --device all model.litertlm --json
  edgekit deploy --adb-server 10.0.0.5:5037 --adb-server localhost:5037 --device all model.litertlm
  edgekit deploy --device 10.0.0.5:5037/R5CT1 model.litertlm
  edgekit deploy --runner ~/llama.cpp/build-android/bin/ model-q4_0.gguf   # llama.cpp's llama-cli
""",
)
@click.argument("artifact", type=click.Path(path_type=Path))
@device_option(several="they run in parallel, one summary line each")
@adb_server_option
@transport_option
@click.option(
    "--runner",
    type=click.Path(path_type=Path),
    envvar="EDGEKIT_RUNNER",
    help=f"{runtimes.DEFAULT.name}'s prebuilt runner for android_arm64 ({runtimes.DEFAULT.runner_binaries}, from "
    f"{runtimes.DEFAULT.name}'s GitHub releases), or its prebuilt/android_arm64/ folder with the .so files; "
    "for a .gguf, "
    "a llama.cpp build folder (bin/ with llama-cli and its lib*.so). Deploy asks it what it speaks "
    "(--helpfull, --help). Needed once per runtime: edgekit caches it.  [env: EDGEKIT_RUNNER]",
)
@click.option("--no-smoke", is_flag=True, help="Skip the smoke run (one prompt through the deployed model).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one entry per device.")
def deploy_command(
    artifact: Path,
    devices: tuple[str, ...],
    adb_servers: tuple[AdbServer, ...],
    transport: str,
    runner: Path | None,
    no_smoke: bool,
    as_json: bool,
) -> None:
    """Deploy ARTIFACT, the runner and the harness to devices (the command's help: _HELP)."""
    from edgekit.artifact import Artifact
    from edgekit.deploy import DeployConfig, DeployResult, deploy_many

    Artifact.load(artifact)  # fail fast, once, on a missing artifact
    config = DeployConfig(runner=runner, smoke=not no_smoke)
    serials = resolve_devices(devices, Transport(transport), servers=adb_servers)
    output = Output(json=as_json)
    with output.progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn()
    ) as bars:
        tasks: dict[tuple[str, str], Any] = {}

        def progress(serial: str, label: str, done: int, total: int) -> None:
            key = (serial, label)
            if key not in tasks:
                tasks[key] = bars.add_task(f"{serial} {label}", total=total)
            bars.update(tasks[key], completed=done)

        outcomes = deploy_many(serials, artifact, config, transport=Transport(transport), progress=progress)
    results = {s: r for s, r in outcomes.items() if isinstance(r, DeployResult)}
    errors = {s: e for s, e in outcomes.items() if isinstance(e, EdgekitError)}
    remember_runner_of(runner, {runtimes.for_probe(r.probe).name for r in results.values() if r.probe is not None})
    if output.json:
        output.data([to_data(results[s]) if s in results else {"serial": s, "error": str(errors[s])} for s in serials])
    else:
        for serial in serials:
            if serial in results:
                output.print(_summary(results[serial]))
                for note in results[serial].notes:
                    # deploy's warnings (a smoke answer unlike this computer's) say "warning:" themselves
                    label, _, text = note.partition(": ") if note.startswith("warning: ") else ("note", "", note)
                    output.note(f"{serial}: {text}", label=label)
    if errors:
        if len(serials) == 1:
            raise next(iter(errors.values()))
        for serial, error in errors.items():
            output.failed(serial, without_serial(error, serial))
        raise click.exceptions.Exit(max(e.exit_code for e in errors.values()))
