"""`edgekit battery-bench`: the 25-conversation workload on the phone, with speed and battery cost.

Thin: the options, then `edgekit.bench.campaign` (every device at once, repeats,
aggregation, result files) or `edgekit.bench.detached` (--detach and --collect all on
every device at once), and rendering.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from edgekit import runtimes
from edgekit._typed import to_data
from edgekit.commands._common import (
    adb_server_option,
    device_option,
    remember_runner_of,
    render_aggregate,
    render_summary,
    transport_option,
)
from edgekit.commands._signals import Stop, signal_name, stop_signals
from edgekit.commands.output import Output
from edgekit.device import AdbServer, Transport, open_device, resolve_devices
from edgekit.errors import (
    EdgekitError,
    InputError,
    RunStillRunning,
    without_serial,
)
from edgekit.probe import Backend

if TYPE_CHECKING:
    from edgekit.bench.campaign import Campaign, DeviceOutcome, Observer, RunInterrupted
    from edgekit.bench.config import BenchConfig
    from edgekit.device.base import Device


@click.command(
    "battery-bench",
    short_help="25 conversations on the phone: tokens/s, TTFT, battery %.",
    epilog=f"""\b
Examples:
  edgekit battery-bench --device SERIAL --runner ./android_arm64/ gemma3-270m-int4.litertlm
  edgekit battery-bench --device SERIAL model.litertlm --detach        # then unplug the cable as told
  edgekit battery-bench --device SERIAL --collect 20261125-143000-a1b2c3
  edgekit battery-bench --device local model.litertlm                  # this computer
  edgekit battery-bench --device all --repeat 3 model.litertlm         # every phone, all at once
  edgekit battery-bench --adb-server 10.0.0.5:5037 --adb-server localhost:5037 --device all model.litertlm
  edgekit battery-bench --device all model.litertlm --detach           # then, later: --collect all
  edgekit battery-bench --device all --repeat 3 a.litertlm b.litertlm  # A/B: A, B, A, B… on every phone
  edgekit battery-bench --device all a.litertlm b.litertlm -o campaign/ # then: edgekit report campaign/
  edgekit battery-bench --device SERIAL model.litertlm model-q4_0.gguf -o rt/  # {runtimes.DEFAULT.name} vs llama.cpp
""",
)
@click.argument("artifacts", metavar="[ARTIFACT]...", nargs=-1, type=click.Path(path_type=Path))
@device_option(several="they run at the same time, each its own measurement and result file")
@adb_server_option
@transport_option
@click.option("--workload", type=click.Path(path_type=Path), help="A workload JSONL file.  [default: chat-25, shipped]")
@click.option(
    "--runner",
    type=click.Path(path_type=Path),
    envvar="EDGEKIT_RUNNER",
    help=f"{runtimes.DEFAULT.name}'s runner for the phone ({runtimes.DEFAULT.runner_binaries}) or its "
    "prebuilt/android_arm64/ folder with the .so files; for a .gguf, a llama.cpp build folder (llama-cli); "
    "the last of each runtime is cached after a deploy.  [env: EDGEKIT_RUNNER]",
)
@click.option(
    "--sample-s",
    type=float,
    default=0.25,
    show_default=True,
    help="Battery sampling period on the device, in seconds (0.01 to 60).",
)
@click.option("--sample-ms", type=int, hidden=True, help="Old spelling of --sample-s, in milliseconds.")
@click.option(
    "--baseline-s",
    type=float,
    help="Length of each idle baseline (one before the workload, one after).  "
    "[default: as long as the workload is expected to take, at most 300 s]",
)
@click.option(
    "--capacity-mah",
    type=float,
    help="Battery design capacity for the % figure.  [default: the device's charge_full_design]",
)
@click.option("--threads", type=int, help="Runner CPU threads (--num_cpu_threads).")
@click.option(
    "--backend",
    type=click.Choice([b.value for b in Backend]),
    default="cpu",
    show_default=True,
    help="Where the runner computes (--backend); gpu and npu need the runner's accelerator library beside it.",
)
@click.option("--max-num-tokens", type=int, help="Pin the runner's KV cache use (--max_num_tokens).")
@click.option(
    "--turn-timeout-s",
    type=int,
    default=300,
    show_default=True,
    help="Kill the runner when one turn (one-shot: with its model load) takes longer; the run fails (exit 7).",
)
@click.option(
    "--detach",
    is_flag=True,
    help="Start the run on the phone and return at once; the phone waits for you to unplug the cable, "
    "settles, then measures. Plug back in when told, then --collect. The way to a valid battery figure over USB.",
)
@click.option(
    "--settle-s",
    type=float,
    default=30.0,
    show_default=True,
    help="With --detach: seconds to settle after the cable is unplugged, before the idle baseline.",
)
@click.option(
    "--collect",
    "collect_id",
    metavar="RUN_ID",
    help="Pull a (detached) run and compute its result. 'all': every run `edgekit runs` lists (on the "
    "--device ones, if given), at once.",
)
@click.option(
    "--resume", "resume_id", metavar="RUN_ID", help="Finish a run that was cut off; finished conversations are kept."
)
@click.option(
    "--repeat",
    type=int,
    default=1,
    show_default=True,
    help="Run the workload N times (with several artifacts: N rounds of A, B, …); headline, report and "
    "compare use the mean of the valid runs with a Student-t 95% interval.",
)
@click.option(
    "--cooldown/--no-cooldown",
    default=True,
    show_default=True,
    help="Between runs (repeats, several artifacts), wait until the battery is back to its starting temperature.",
)
@click.option(
    "-o",
    "--output",
    "output_path",
    type=click.Path(path_type=Path),
    help="Result JSON; with several devices, -<serial> is added before the extension (several artifacts: "
    "-<artifact> too). A folder (no extension): one result file per run and a campaign.json for "
    "`edgekit report DIR`.  [default: edgekit-results/<time>-<serial>.json]",
)
@click.option("--redact", is_flag=True, help="Replace device serials in the result.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result JSON on stdout (a JSON list, one result per device, with several devices).",
)
def bench_command(as_json: bool, **options: Any) -> None:
    """Run a conversation workload (25 conversations by default) through the model ON the
    phone, detached from the host, sampling the fuel gauge; report tokens/s, time to first
    token, and the workload's own battery cost: % of battery per 25 conversations, mAh, mWh
    and mJ per output token, after subtracting idle baselines measured before and after.

    A battery figure needs the phone on battery: over USB, use --detach and unplug when
    told. Whatever would corrupt it (a supply online, a suspend, a change of screen or
    thermal state, unit or counter doubts) voids it, naming the cause; speed figures stand.
    Figures from an emulated device (edgekit's or Google's Android Emulator) are labelled
    simulated. Several devices (or --device all, on every --adb-server) run at the same
    time, one progress line each; a device that fails never stops the others.

    Several artifacts (A/B): each phone runs them interleaved, A, B, A, B… (--repeat
    rounds), with the cool-down between runs, so that a drifting battery or temperature
    weighs on each alike; every run records its start charge and temperature and has its
    own result file (-<artifact> added before the extension). A failing artifact never
    stops the other runs.

    Exit codes: 0 complete (battery valid, or a device with no battery counters: speed
    only); 6 complete but the battery headline is void; 7 failed (runner crash, timeout,
    missing turns): the result is written to -o for all three. 130 Ctrl-C (once or twice),
    143 SIGTERM, 129 SIGHUP: nothing is written to -o; a run on a phone is stopped, its
    settings restored, and kept there for --collect or --resume (the command prints both).
    75 --collect of a run that is still running: collect it again later. 2: -o cannot be
    written, refused before the run; should it fail after (the folder went away), the
    result goes to edgekit's cache or the temp folder, named in the message. With several
    devices: the worst of their codes.

    Every run started on a phone is printed (stderr) with its --collect command the moment
    it starts, and listed by `edgekit runs` until it is collected.
    """
    output = Output(json=as_json)
    with stop_signals() as stop:
        try:
            _bench(output, stop, **options)
        except KeyboardInterrupt:  # outside an attached run (deploy, collect, resume): nothing on the phone to stop
            output.error(f"{signal_name(stop.signum)}: stopped")
            raise click.exceptions.Exit(stop.exit_code) from None


def _bench(
    output: Output,
    stop: Stop,
    *,
    artifacts: tuple[Path, ...],
    devices: tuple[str, ...],
    adb_servers: tuple[AdbServer, ...],
    transport: str,
    workload: Path | None,
    runner: Path | None,
    sample_s: float,
    sample_ms: int | None,
    baseline_s: float | None,
    capacity_mah: float | None,
    threads: int | None,
    backend: str,
    max_num_tokens: int | None,
    turn_timeout_s: int,
    detach: bool,
    settle_s: float,
    collect_id: str | None,
    resume_id: str | None,
    repeat: int,
    cooldown: bool,
    output_path: Path | None,
    redact: bool,
) -> None:
    from edgekit.bench.campaign import Campaign
    from edgekit.bench.config import BenchConfig

    if sum(bool(x) for x in (detach, collect_id, resume_id)) > 1:
        raise InputError("choose one of --detach, --collect and --resume")
    if not artifacts and not (collect_id or resume_id):
        raise InputError("give the artifact to benchmark (or --collect RUN_ID / --resume RUN_ID)")
    if artifacts and (collect_id or resume_id):
        flag = "--collect" if collect_id else "--resume"
        raise InputError(f"{flag} names a run: give no artifact, not {', '.join(map(str, artifacts))}")
    if len(artifacts) > 1 and detach:
        raise InputError("--detach starts one artifact's run per phone: give one artifact (run A/B attached)")
    config = BenchConfig(
        workload=workload,
        runner=runner,
        sample_period_s=_sample_period_s(sample_s, sample_ms),
        baseline_s=baseline_s,
        capacity_mah=capacity_mah,
        threads=threads,
        backend=Backend(backend),
        max_num_tokens=max_num_tokens,
        redact=redact,
        settle_s=settle_s,
        turn_timeout_s=turn_timeout_s,
    )
    for path in artifacts:
        if not path.is_file():
            raise InputError(f"artifact {path} does not exist or is not a file", path=path)
    campaign = Campaign(artifacts=artifacts, config=config, repeat=repeat, cooldown=cooldown, output=output_path)
    if collect_id == "all":
        names = set(resolve_devices(devices, Transport(transport), servers=adb_servers)) if devices else None
        _collect_all(output, names, campaign)
        return
    serials = resolve_devices(devices, Transport(transport), servers=adb_servers)
    if (collect_id or resume_id) and len(serials) > 1:
        flag = "--collect" if collect_id else "--resume"
        raise InputError(f"{flag} names one device's run: give one --device, not {', '.join(serials)}")
    if collect_id or resume_id:
        with open_device(serials[0], Transport(transport)) as device:
            if collect_id:
                _collect(output, device, collect_id, campaign)
            elif resume_id:
                _resume(output, device, resume_id, config, Transport(transport))
    elif detach:
        _start_detached(output, serials, Transport(transport), campaign)
    else:
        _attached(output, serials, Transport(transport), campaign, stop)


def _sample_period_s(sample_s: float, sample_ms: int | None) -> float:
    """--sample-s, or the old spelling --sample-ms (hidden: it still works in scripts)."""
    if sample_ms is None:
        return sample_s
    if click.get_current_context().get_parameter_source("sample_s") is not click.core.ParameterSource.DEFAULT:
        raise InputError("give the sampling period once: --sample-s (seconds); --sample-ms is its old spelling")
    return sample_ms / 1000


def _remember(output: Output, serial: str, run_id: str, transport: Transport, *, detached: bool) -> None:
    """A run started on `serial`: into the local index (`edgekit runs`), and its id and the
    commands that get it back on stderr, at once: whatever happens to this command next."""
    from edgekit.bench import runs

    entry = runs.RunEntry(
        run_id=run_id,
        device=serial,
        transport=transport.value,
        started=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        detached=detached,
    )
    with contextlib.suppress(OSError):  # a read-only home must not stop the run: the line below still says it
        runs.add(entry)
    with contextlib.suppress(OSError):
        output.say(
            f"run {run_id} started on {serial}; if this is cut off: {entry.collect_command} (or --resume {run_id})"
        )


def _forget(run_id: str) -> None:
    from edgekit.bench import runs

    with contextlib.suppress(OSError):
        runs.remove(run_id)


def _observer(output: Output, bars: Progress | None, repeat: int, transport: Transport = Transport.ADB) -> Observer:
    """What the user sees: one progress line per device, its name first (`bars`), or a
    spinner per step when there are no bars (--collect)."""
    from edgekit.bench.campaign import Observer

    tasks: dict[str, TaskID] = {}
    lock = threading.Lock()  # several devices' threads report at once

    def task(serial: str) -> TaskID:
        assert bars is not None
        with lock:
            if serial not in tasks:
                tasks[serial] = bars.add_task(f"{serial}: starting…", total=None)
            return tasks[serial]

    def progress(serial: str, index: int, done: int, total: int) -> None:
        if bars is None:
            return
        label = f"run {index + 1}/{repeat}: conversations" if repeat > 1 else "conversations"
        bars.update(task(serial), description=f"{serial}: {label}", completed=done, total=total)

    @contextlib.contextmanager
    def status(serial: str, text: str) -> Iterator[None]:
        if bars is None:
            with output.status(f"{serial}: {text}"):
                yield
            return
        bars.update(task(serial), description=f"{serial}: {text}")
        yield

    def note(serial: str, text: str) -> None:
        output.note(f"{serial}: {text}")

    return Observer(
        status=status,
        progress=progress,
        note=note,
        started=lambda serial, run_id: _remember(output, serial, run_id, transport, detached=False),
        collected=lambda _serial, run_id: _forget(run_id),
    )


def _attached(output: Output, serials: list[str], transport: Transport, campaign: Campaign, stop: Stop) -> None:
    from edgekit.bench.campaign import CampaignInterrupted, RunInterrupted, run_devices

    outcomes: list[DeviceOutcome] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with output.progress(*columns) as bars:
            observer = _observer(output, bars, len(campaign.order()), transport)
            outcomes.extend(run_devices(serials, transport, campaign, observer))
    except RunInterrupted as cut:
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            _render(output, outcomes, len(serials) * len(campaign.artifacts))  # the devices that finished before
            output.say(_interrupted_message(cut, stop.signum, transport))
        raise click.exceptions.Exit(stop.exit_code) from None
    except CampaignInterrupted as cut:
        with contextlib.suppress(OSError):
            _render(output, cut.outcomes, len(serials) * len(campaign.artifacts))  # the devices that had ended
            for one in cut.stops:  # one line per device whose run was stopped
                output.say(_interrupted_message(one, stop.signum, transport))
        raise click.exceptions.Exit(stop.exit_code) from None
    ran = [r.runner for o in outcomes for r in o.runs]
    remember_runner_of(
        campaign.config.runner, {r.runtime for r in ran if isinstance(r.sha256, str) and isinstance(r.runtime, str)}
    )
    _render(output, outcomes, len(serials) * len(campaign.artifacts))
    worst = max(o.exit_code for o in outcomes)
    if worst:
        raise click.exceptions.Exit(worst)


def _render(output: Output, outcomes: list[DeviceOutcome], devices: int) -> None:
    """Each device's summary (or error) in device order (with several artifacts, each device's
    per artifact); --json: its result, a list with several devices or artifacts (`devices`:
    how many outcomes were asked for)."""
    if not output.json:
        for outcome in outcomes:
            _render_outcome(output, outcome)
        return
    for outcome in outcomes:
        if outcome.error is not None:  # on stderr too, as deploy --json does
            output.failed(outcome.name, outcome.error)
        _render_write_error(output, outcome)
    if devices == 1 and outcomes and outcomes[0].result is not None:
        output.echo(outcomes[0].result.to_json(), nl=False)
        return
    output.data([_document(o) for o in outcomes])


def _document(outcome: DeviceOutcome) -> dict[str, Any]:
    """An outcome in --json's list: its result, else the device (and artifact) and the error."""
    if outcome.result is not None:
        data: dict[str, Any] = to_data(outcome.result)
        return data
    doc = {"serial": outcome.serial, "error": str(outcome.error)}
    return doc if outcome.artifact is None else {**doc, "artifact": str(outcome.artifact)}


def _render_outcome(output: Output, outcome: DeviceOutcome) -> None:
    if outcome.error is not None:
        output.failed(outcome.name, outcome.error)
    if outcome.result is None:
        return
    for line in render_summary(outcome.result, outcome.path):
        output.print(line, markup=False)
    for line in render_aggregate(outcome.result):
        output.print(line, markup=False)
    _render_write_error(output, outcome)


def _render_write_error(output: Output, outcome: DeviceOutcome) -> None:
    if outcome.write_error is not None:
        output.failed(outcome.name, outcome.write_error)


def _interrupted_message(stop: RunInterrupted, signum: int | None, transport: Transport = Transport.ADB) -> str:
    """One line: what stopped the command, the run's id, and the commands that get it back."""
    why = signal_name(signum)
    if stop.run_id is None:
        return f"{why}: stopped before the run started on {stop.serial}: nothing to collect"
    from edgekit.bench.runs import RunEntry

    entry = RunEntry(run_id=stop.run_id, device=stop.serial, transport=transport.value, started="", detached=False)
    collect = entry.collect_command
    if stop.stop_error is not None:
        return (
            f"{why}: run {stop.run_id} could not be stopped on {stop.serial} ({stop.stop_error}); it goes on there "
            f"and restores the phone's settings when it ends: once the phone is back, {collect}"
        )
    return (
        f"{why}: run {stop.run_id} stopped on {stop.serial}, the phone's settings restored; what it measured "
        f"stays there: {collect} (or --resume {stop.run_id})"
    )


def _collect(output: Output, device: Device, run_id: str, campaign: Campaign) -> None:
    from edgekit.bench.campaign import collect_outcome

    try:
        outcome = collect_outcome(device, run_id, campaign, _observer(output, None, 1))
    except RunStillRunning as live:  # not a failure: nothing to write yet
        if output.json:
            output.data({"run_id": run_id, "device": device.serial, "state": "running", "done": live.done,
                        "total": live.total})  # fmt: skip
        else:
            output.say(str(live))
        raise click.exceptions.Exit(live.exit_code) from None
    _forget(run_id)
    assert outcome.result is not None
    if output.json:
        output.echo(outcome.result.to_json(), nl=False)
        _render_write_error(output, outcome)
    else:
        _render_outcome(output, outcome)
    if outcome.exit_code:
        raise click.exceptions.Exit(outcome.exit_code)


def _collect_all(output: Output, names: set[str] | None, campaign: Campaign) -> None:
    """--collect all: every run `edgekit runs` lists (on the devices `names`, if given), at once."""
    from edgekit.bench import runs
    from edgekit.bench.detached import collect_runs

    entries = [e for e in runs.entries() if names is None or e.device in names]
    if not entries:
        raise InputError("--collect all: no run started from this computer waits to be collected (see `edgekit runs`)")
    documents: list[Any] = []
    codes: list[int] = []
    for entry, outcome in collect_runs(entries, campaign):
        if isinstance(outcome, RunStillRunning):  # not a failure: that one is collected again later
            output.say(str(outcome))
            documents.append({"run_id": entry.run_id, "device": entry.device, "state": "running",
                              "done": outcome.done, "total": outcome.total})  # fmt: skip
            codes.append(outcome.exit_code)
            continue
        if outcome.error is None:
            _forget(entry.run_id)
        codes.append(outcome.exit_code)
        if outcome.result is not None:
            documents.append(to_data(outcome.result))
        else:
            documents.append({"serial": entry.device, "run_id": entry.run_id, "error": str(outcome.error)})
        if not output.json or outcome.error is not None:
            _render_outcome(output, outcome)
        else:
            _render_write_error(output, outcome)
    if output.json:
        output.data(documents)
    if max(codes):
        raise click.exceptions.Exit(max(codes))


def _resume(output: Output, device: Device, run_id: str, config: BenchConfig, transport: Transport) -> None:
    from edgekit.bench import session

    session.resume(device, run_id)
    _remember(output, device.serial, run_id, transport, detached=True)
    plan = session.plan(config)
    if output.json:
        output.data(_run_state(device.serial, run_id, "running", plan.total_s))
        return
    output.echo(
        f"run {run_id} resumed on {device.serial}; when it is done, run\n"
        f"  edgekit battery-bench --device {device.serial} --collect {run_id}"
    )


def _run_state(serial: str, run_id: str, state: str, measure_s: float) -> dict[str, Any]:
    return {"run_id": run_id, "device": serial, "state": state, "measure_s_after_unplug": measure_s}


def _start_detached(output: Output, serials: list[str], transport: Transport, campaign: Campaign) -> None:
    """Deploy and start the run on every device at once; a device that cannot start is one
    error line and the others still start."""
    from edgekit.bench import session
    from edgekit.bench.detached import start_detached

    [artifact] = campaign.artifacts
    plan = session.plan(campaign.config)
    what = serials[0] if len(serials) == 1 else f"{len(serials)} devices"
    with output.status(f"deploying and starting the run on {what}…"):
        outcomes = start_detached(
            serials,
            transport,
            artifact,
            campaign.config,
            started=lambda serial, run_id: _remember(output, serial, run_id, transport, detached=True),
        )
    started = [(serial, run_id) for serial, run_id in outcomes.items() if isinstance(run_id, str)]
    errors = {serial: error for serial, error in outcomes.items() if isinstance(error, EdgekitError)}
    if errors and len(serials) == 1:
        raise next(iter(errors.values()))
    if started:
        from edgekit.deploy import check_model_file

        remember_runner_of(campaign.config.runner, {check_model_file(artifact)})
    if output.json:
        states: list[Any] = [
            _run_state(serial, run_id, "waiting_for_unplug", plan.total_s) for serial, run_id in started
        ]
        states += [{"serial": serial, "error": str(error)} for serial, error in errors.items()]
        output.data(states[0] if len(serials) == 1 else states)
    elif started:
        config = campaign.config
        for serial, run_id in started:
            output.echo(f"run {run_id} started on {serial}.")
        if len(started) == 1:
            collect_lines = "\n".join(f"  edgekit battery-bench --device {s} --collect {r}" for s, r in started)
        else:
            collect_lines = (
                "  edgekit battery-bench --collect all      (every run started here; `edgekit runs` lists them)"
            )
        cable = "THE USB CABLE" if len(started) == 1 else "EVERY PHONE'S USB CABLE"
        output.echo(
            f"UNPLUG {cable} NOW: the phone waits up to {config.unplug_wait_s / 60:.0f} min for it, then "
            f"settles {plan.settle_s:.0f} s, measures idle {plan.baseline_s:.0f} s, runs the workload "
            f"(about {plan.workload_s / 60:.0f} min) and measures idle {plan.baseline_s:.0f} s again.\n"
            f"PLUG IT BACK IN about {plan.total_s / 60:.0f} min after unplugging (earlier only ends the "
            f"battery figure), then run\n{collect_lines}"
        )
    for serial, error in errors.items():
        output.failed(serial, without_serial(error, serial))
    if errors:
        raise click.exceptions.Exit(max(e.exit_code for e in errors.values()))
