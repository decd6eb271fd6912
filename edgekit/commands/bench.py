"""`edgekit battery-bench`: the 25-conversation workload on the phone, with speed and battery cost."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from edgekit.bench.power import ValidityFlag
from edgekit.bench.result import EXIT_INTERRUPTED, BenchResult
from edgekit.commands._common import print_json, stderr_console
from edgekit.commands.deploy import transport_option
from edgekit.device import Transport, open_device, resolve_devices
from edgekit.errors import InputError


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def _where(flag: ValidityFlag) -> str:
    window, t = flag.window, flag.t_s
    if window and t is not None:
        return f" ({window}, {t:.1f} s)"
    return f" ({window})" if window else ""


def render_summary(result: BenchResult, path: Path | None) -> list[str]:
    """The human summary of a BenchResult (every figure labelled simulated when it is)."""
    from edgekit.bench.result import figure

    s = result.summary
    sim = " (simulated)" if result.simulated else ""
    w = result.workload
    turns = sum(c.turns for c in w.conversations)
    lines = [
        f"battery-bench {result.run_id}: {w.name} v{w.version} ({len(w.conversations)} conversations, "
        f"{turns} turns) on {result.device.model or result.device.serial}{sim}"
        + ("" if result.complete else " — FAILED (incomplete)"),
    ]
    if result.simulated:
        lines.append(
            f"  SIMULATED: {result.device.emulator or 'an emulated device'} has no real battery; "
            "every figure below is simulated"
        )
    lines.append(
        f"  decode {_fmt(s.decode_tokens_per_s, '.1f')} tok/s · prefill {_fmt(s.prefill_tokens_per_s, '.1f')} "
        f"tok/s · time to first token median {_fmt(s.ttft_s_median, '.3f', ' s')} · {s.output_tokens} output "
        f"tokens in {_fmt(s.duration_s, '.1f', ' s')}{sim}"
    )
    runner = result.runner
    if runner.protocol:
        lines.append(
            f"  runner: {runner.protocol.replace('_', '-')} protocol; "
            f"time to first token from the {runner.ttft_source or None}"
        )
        for note in runner.conditions or ():
            lines.append(f"  runner condition: {note}")
    pct = figure(result, "battery_pct_per_25_conversations")
    charge = figure(result, "workload_charge_mah")
    if charge.value is None:
        voids = [f for f in result.validity if f.voids]
        if result.exit_code() == 0:  # a device with no battery counters: a speed-only run
            why = "; ".join(f.message for f in voids) or "no battery counters"
            lines.append(f"  battery: not measured — {why}")
        else:
            why = "; ".join(f"[{f.code}]{_where(f)} {f.message}" for f in voids) or "no valid battery figure"
            lines.append(f"  battery: VOID — {why}")
    else:
        interval = "" if pct.low is None or pct.high is None else f" (95% interval {pct.low:.3f}–{pct.high:.3f}%)"
        headline = (
            f"  battery: {_fmt(pct.value, '.3f', '%')} of design capacity per 25 conversations{interval}{sim} "
            f"[{pct.basis}]"
        )
        lines.append(headline)
        full = figure(result, "battery_pct_of_full_charge_per_25_conversations")
        energy = figure(result, "workload_energy_mwh")
        mj = figure(result, "mj_per_output_token")
        lines.append(
            f"  {_fmt(full.value, '.3f', '%')} of today's full charge (charge_full) · {charge.value:.2f} mAh · "
            f"{_fmt(energy.value, '.2f', ' mWh')} · {_fmt(mj.value, '.1f')} mJ/output token{sim}"
        )
        p = result.power
        if p.baseline_current_ma is not None:
            after = p.baseline_after_current_ma
            drift = "" if after is None else f", {after:.1f} mA after (drift {p.baseline_drift_ma or 0.0:+.1f} mA)"
            lines.append(
                f"  idle baseline subtracted: {p.baseline_current_ma:.1f} mA before{drift} · "
                f"{p.baseline_power_mw or 0.0:.0f} mW{sim}"
            )
        if p.conventions:
            lines.append(f"  current_now: {p.conventions.basis}")
    for flag in result.validity:
        lines.append(f"  {'VOID' if flag.voids else 'flag'} [{flag.code}]{_where(flag)}: {flag.message}")
    if path is not None:
        lines.append(f"  result: {path}")
    return lines


def render_aggregate(result: BenchResult) -> list[str]:
    """With --repeat: the mean, sd and 95% interval of the headline figures over the valid runs."""
    lines = []
    for key in ("battery_pct_per_25_conversations", "decode_tokens_per_s", "ttft_s_median"):
        a = (result.aggregate or {}).get(key)
        if a is None:
            continue
        if a.mean is None:
            lines.append(f"  {key}: no valid run of {a.runs}")
        elif a.ci95_low is None or a.ci95_high is None or a.stddev is None:
            lines.append(f"  {key}: {a.mean:.4g} from 1 valid run of {a.runs}: no interval")
        else:
            lines.append(
                f"  {key} over {a.n} valid of {a.runs} runs: mean {a.mean:.4g}, "
                f"sd {a.stddev:.2g} (95% interval {a.ci95_low:.4g} – {a.ci95_high:.4g})"
            )
    return lines


def _default_output(serial: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^0-9A-Za-z._-]+", "_", serial)
    return Path("edgekit-results") / f"{stamp}-{safe}.json"


@click.command(
    "battery-bench",
    epilog="""\b
Examples:
  edgekit battery-bench --device SERIAL --runner ./android_arm64/ gemma3-270m-int4.litertlm
  edgekit battery-bench --device SERIAL model.litertlm --detach        # then unplug the cable as told
  edgekit battery-bench --device SERIAL --collect 20261125-143000-a1b2c3
  edgekit battery-bench --device local model.litertlm                  # this computer
""",
)
@click.argument("artifact", type=click.Path(path_type=Path), required=False)
@click.option(
    "--device",
    "devices",
    multiple=True,
    metavar="SERIAL",
    help="adb serial, HOST:PORT, or local.  [default: the one attached phone]",
)
@transport_option
@click.option("--workload", type=click.Path(path_type=Path), help="A workload JSONL file.  [default: chat-25, shipped]")
@click.option(
    "--runner",
    type=click.Path(path_type=Path),
    envvar="EDGEKIT_RUNNER",
    help="LiteRT-LM's runner for the phone (litert_lm_advanced_main or litert_lm_main) or its "
    "prebuilt/android_arm64/ folder with the .so files; cached after the first deploy.  [env: EDGEKIT_RUNNER]",
)
@click.option("--sample-ms", type=int, default=250, show_default=True, help="Battery sampling period on the device.")
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
@click.option("--backend", type=click.Choice(["cpu", "gpu", "npu"]), default="cpu", show_default=True)
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
@click.option("--collect", "collect_id", metavar="RUN_ID", help="Pull a (detached) run and compute its result.")
@click.option(
    "--resume", "resume_id", metavar="RUN_ID", help="Finish a run that was cut off; finished conversations are kept."
)
@click.option(
    "--repeat",
    type=int,
    default=1,
    show_default=True,
    help="Run the workload N times; headline, report and compare use the mean of the valid runs "
    "with a Student-t 95% interval.",
)
@click.option(
    "--cooldown/--no-cooldown",
    default=True,
    show_default=True,
    help="Between repeats, wait until the battery is back to its starting temperature.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Result JSON.  [default: edgekit-results/<time>-<serial>.json]",
)
@click.option("--redact", is_flag=True, help="Replace device serials in the result.")
@click.option("--json", "as_json", is_flag=True, help="Print the result JSON on stdout.")
def bench_command(
    artifact: Path | None,
    devices: tuple[str, ...],
    transport: str,
    workload: Path | None,
    runner: Path | None,
    sample_ms: int,
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
    output: Path | None,
    redact: bool,
    as_json: bool,
) -> None:
    """Run a conversation workload (25 conversations by default) through the model ON the
    phone, detached from the host, sampling the fuel gauge; report tokens/s, time to first
    token, and the workload's own battery cost: % of battery per 25 conversations, mAh, mWh
    and mJ per output token, after subtracting idle baselines measured before and after.

    A battery figure needs the phone on battery: over USB, use --detach and unplug when
    told. Whatever would corrupt it (a supply online, a suspend, a change of screen or
    thermal state, unit or counter doubts) voids it, naming the cause; speed figures stand.
    Figures from an emulated device (edgekit's or Google's Android Emulator) are labelled
    simulated.

    Exit codes: 0 complete (battery valid, or a device with no battery counters: speed
    only); 6 complete but the battery headline is void; 7 failed (runner crash, timeout,
    missing turns): the result is written to -o for all three. 130 Ctrl-C: nothing is
    written to -o; a run on a phone is stopped and kept there for --collect or --resume
    (the command prints both).
    """
    from edgekit.bench import phone, session
    from edgekit.bench.aggregate import aggregate

    if sum(bool(x) for x in (detach, collect_id, resume_id)) > 1:
        raise InputError("choose one of --detach, --collect and --resume")
    if repeat < 1:
        raise InputError(f"--repeat must be at least 1, got {repeat}")
    if artifact is None and not (collect_id or resume_id):
        raise InputError("give the artifact to benchmark (or --collect RUN_ID / --resume RUN_ID)")
    config = session.BenchConfig(
        workload=workload,
        runner=runner,
        sample_period_s=sample_ms / 1000,
        baseline_s=baseline_s,
        capacity_mah=capacity_mah,
        threads=threads,
        backend=backend,
        max_num_tokens=max_num_tokens,
        redact=redact,
        settle_s=settle_s,
        turn_timeout_s=turn_timeout_s,
    )
    serials = resolve_devices(devices, Transport(transport))
    if len(serials) != 1:
        raise InputError(f"battery-bench runs on one device at a time; got {', '.join(serials)}")
    console = stderr_console()
    device = open_device(serials[0], Transport(transport))
    out = Console(highlight=False, soft_wrap=True)
    try:
        if detach or resume_id:
            if resume_id:
                session.resume(device, resume_id)
                run_id = resume_id
            else:
                assert artifact is not None
                with console.status("deploying and starting the run on the device…"):
                    run_id = session.start_run(device, artifact, config, detach=True)
            plan = session.plan(config)
            if as_json:
                print_json(
                    {
                        "run_id": run_id,
                        "device": device.serial,
                        "state": "running" if resume_id else "waiting_for_unplug",
                        "measure_s_after_unplug": plan.total_s,
                    }
                )
            elif resume_id:
                out.print(
                    f"run {run_id} resumed on {device.serial}; when it is done, run\n"
                    f"  edgekit battery-bench --device {device.serial} --collect {run_id}"
                )
            else:
                out.print(
                    f"run {run_id} started on {device.serial}.\n"
                    f"UNPLUG THE USB CABLE NOW: the phone waits up to {config.unplug_wait_s / 60:.0f} min for it, then "
                    f"settles {plan.settle_s:.0f} s, measures idle {plan.baseline_s:.0f} s, runs the workload "
                    f"(about {plan.workload_s / 60:.0f} min) and measures idle {plan.baseline_s:.0f} s again.\n"
                    f"PLUG IT BACK IN about {plan.total_s / 60:.0f} min after unplugging (earlier only ends the "
                    f"battery figure), then run\n"
                    f"  edgekit battery-bench --device {device.serial} --collect {run_id}"
                )
            return
        results: list[BenchResult] = []
        if collect_id:
            with console.status("collecting the run…"):
                results.append(session.collect(device, collect_id))
        else:
            assert artifact is not None
            online = phone.online_supplies(device)
            if online:
                console.print(
                    f"note: {', '.join(online)} online: the phone runs from the cable, so the battery figure "
                    "will be void (speed figures stand). For a battery figure use --detach and unplug when told."
                )
            start_temp = device.battery().temperature_c
            for i in range(repeat):
                if i and cooldown:
                    with console.status("cooling down to the starting battery temperature…"):
                        phone.cool_down(device, start_temp)
                results.append(_run_attached(device, artifact, config, console, i, repeat))
        path = output or _default_output(device.serial if not redact else "redacted")
        final = results[-1]
        if len(results) > 1:
            for i, r in enumerate(results, 1):
                r.write(path.with_name(f"{path.stem}-run{i}{path.suffix}"))
            final.aggregate = aggregate(results)
        final.write(path)
        worst = max(r.exit_code() for r in results)
        if as_json:
            click.echo(final.to_json(), nl=False)
        else:
            for line in render_summary(final, path):
                out.print(line, markup=False)
            for line in render_aggregate(final):
                out.print(line, markup=False)
        if worst:
            raise click.exceptions.Exit(worst)
    finally:
        device.close()


def _run_attached(device: Any, artifact: Path, config: Any, console: Any, index: int, repeat: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgekit.bench import session
    from edgekit.device.local import LocalDevice

    label = f"run {index + 1}/{repeat}: conversations" if repeat > 1 else "conversations"
    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    ) as bars:
        task = bars.add_task(label, total=None)

        def progress(done: int, total: int) -> None:
            bars.update(task, completed=done, total=total)

        if isinstance(device, LocalDevice):
            return session.battery_bench(device, artifact, config, progress)
        try:
            with console.status("deploying and starting the run on the device…"):
                run_id = session.start_run(device, artifact, config)
        except KeyboardInterrupt:
            console.print("interrupted before the run started on the device: nothing to collect", highlight=False)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        try:
            session.follow(device, run_id, config, progress)
        except KeyboardInterrupt:
            session.interrupt(device, run_id)
            console.print(
                f"interrupted: run {run_id} stopped on {device.serial} (screen settings restored); "
                f"what it measured stays there:\n"
                f"  edgekit battery-bench --device {device.serial} --collect {run_id}\n"
                f"  edgekit battery-bench --device {device.serial} --resume {run_id}",
                soft_wrap=True,
                highlight=False,
            )
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        return session.collect(device, run_id)
