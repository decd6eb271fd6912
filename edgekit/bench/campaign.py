"""battery-bench as a command line runs it: every device at once, repeats, aggregation
and where each result file goes. The `battery-bench` command is this module plus rendering.

    run_devices(serials, transport, campaign)   list[DeviceOutcome], the devices at the same time
    run_repeats(device, campaign)               the attached runs on one device (cool-down between)
    collect(device, run_id, campaign)           a detached run's result, written like the others
    write_results(results, path)                run files + the aggregate in the last result
    result_path(output, name, several=...)      where a device's result goes

Each phone's run is detached on the phone (its driver runs there), so with several devices
the host runs one thread per device that only deploys, starts, polls, pulls and computes;
a device that fails is its own outcome and never stops the others.

Ctrl-C on an attached run stops the phone's driver and raises `RunInterrupted`, which
names the run so its measurements can still be collected or resumed; with several devices
every device's run is stopped so, and `CampaignInterrupted` carries each of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from edgekit._data import user_cache_dir
from edgekit._files import check_writable
from edgekit.bench import session
from edgekit.bench.aggregate import aggregate
from edgekit.bench.config import BenchConfig
from edgekit.bench.phone import cool_down, online_supplies
from edgekit.bench.result import BenchResult
from edgekit.device import Transport, open_device
from edgekit.device.base import Device
from edgekit.errors import DeviceError, EdgekitError, InputError, RunLost

RESULTS_DIR = Path("edgekit-results")
"""Where results go without `-o`: `edgekit-results/<local time>-<serial>.json`."""


def fallback_dirs() -> tuple[Path, ...]:
    """Where a result goes when its own path cannot be written after the run (the folder
    went away or turned read-only meanwhile): edgekit's cache, else the system temp folder."""
    return (user_cache_dir() / "unsaved-results", Path(tempfile.gettempdir()))


def _nothing(_serial: str, _text: str) -> contextlib.AbstractContextManager[object]:
    return contextlib.nullcontext()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Campaign:
    """What to run on each device: `artifact` with `config`, `repeat` times, results to `output`.

    `output` None: `edgekit-results/<local time>-<serial>.json` per device. With several
    devices a given `output` gets `-<serial>` before its extension; with `repeat` > 1 each
    run is also kept as `<output stem>-runN<suffix>` and the main file carries the aggregate.
    """

    artifact: Path | None
    config: BenchConfig
    repeat: int = 1
    cooldown: bool = True
    output: Path | None = None

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise InputError(f"--repeat must be at least 1, got {self.repeat}")

    def check_output(self) -> None:
        """Refuse, before anything runs, an output whose folder cannot take the result."""
        check_writable(result_path(self.output, "serial", several=False), make_folders=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Observer:
    """What a caller hears while a campaign runs (every callback optional). Every callback
    names the device (its `serial`): with several devices they come from one thread each.

    `status(serial, text)` is entered around a step that shows no progress of its own (deploy
    and start, cool-down, collect); `progress(serial, run_index, done, total)` counts conversations;
    `note(serial, text)` is something the user should know before the result;
    `started(serial, run_id)` hears a run the moment its driver started on the phone, and
    `collected(serial, run_id)` once that run's result is in (a run started and never
    collected is one to find again: the CLI keeps an index of them).
    """

    status: Callable[[str, str], contextlib.AbstractContextManager[object]] = _nothing
    progress: Callable[[str, int, int, int], None] | None = None
    note: Callable[[str, str], None] | None = None
    started: Callable[[str, str], None] | None = None
    collected: Callable[[str, str], None] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeviceOutcome:
    """One device's part of a campaign: its runs and result file, or the error that stopped it."""

    serial: str
    runs: tuple[BenchResult, ...] = ()
    path: Path | None = None
    error: EdgekitError | None = None
    write_error: str | None = None
    """Set when the result could not be written where asked: `path` is then the fallback."""

    @property
    def result(self) -> BenchResult | None:
        """The result written to `path` (with the aggregate of the runs when there are several)."""
        return self.runs[-1] if self.runs else None

    @property
    def exit_code(self) -> int:
        """The worst exit code of the runs, or the error's."""
        if self.error is not None:
            return self.error.exit_code
        worst = max(r.exit_code() for r in self.runs)
        return max(worst, InputError.exit_code) if self.write_error else worst


class CampaignInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGHUP) while several devices ran: every device's run was stopped
    (`stops`, one RunInterrupted each); `outcomes` are the devices that had ended before."""

    def __init__(self, outcomes: list[DeviceOutcome], stops: list[RunInterrupted]) -> None:
        super().__init__(len(outcomes), len(stops))
        self.outcomes = outcomes
        self.stops = stops


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGHUP) during an attached run. `run_id` None: the run had not
    started on the device. `stop_error` set: the phone could not be reached to stop the run
    (it goes on there, and its driver restores the phone's settings when it ends)."""

    def __init__(self, serial: str, run_id: str | None, stop_error: EdgekitError | None = None) -> None:
        super().__init__(serial, run_id)
        self.serial = serial
        self.run_id = run_id
        self.stop_error = stop_error


def result_path(output: Path | None, name: str, *, several: bool, now: datetime.datetime | None = None) -> Path:
    """Where the result of device `name` (its serial, or its redacted serial) goes."""
    safe = re.sub(r"[^0-9A-Za-z._-]+", "_", name)
    if output is None:
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        return RESULTS_DIR / f"{stamp}-{safe}.json"
    return output.with_name(f"{output.stem}-{safe}{output.suffix}") if several else output


def run_path(path: Path, index: int) -> Path:
    """Where run `index` (from 1) of a repeated campaign is kept beside `path`."""
    return path.with_name(f"{path.stem}-run{index}{path.suffix}")


def write_results(results: list[BenchResult], path: Path) -> BenchResult:
    """Write the result of one device to `path`: with several runs each to its `run_path`
    and the last, carrying the aggregate of all, to `path`. Returns that last result."""
    final = results[-1]
    if len(results) > 1:
        for i, r in enumerate(results, 1):
            r.write(run_path(path, i))
        final.aggregate = aggregate(results)
    final.write(path)
    return final


def run_attached(
    device: Device,
    artifact: Path,
    config: BenchConfig,
    *,
    index: int = 0,
    observer: Observer = Observer(),
    stop: threading.Event | None = None,
) -> BenchResult:
    """One attached run on `device` (deploy, start, follow, collect); on `local`, in this process.

    `observer.status` is shown until the run has started (or its first progress). `stop`
    set (from another thread: Ctrl-C in the main one) stops the run at its next poll as
    Ctrl-C would: RunInterrupted."""
    started: list[str] = []
    starting = contextlib.ExitStack()
    starting.enter_context(observer.status(device.serial, "deploying and starting the run on the device…"))

    def on_started(run_id: str) -> None:
        started.append(run_id)
        starting.close()
        if observer.started is not None:
            observer.started(device.serial, run_id)

    def progress(done: int, total: int) -> None:
        starting.close()
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt  # handled below, as a Ctrl-C in this thread would be
        if observer.progress is not None:
            observer.progress(device.serial, index, done, total)

    try:
        result = session.battery_bench(device, artifact, config, progress, on_started=on_started)
    except KeyboardInterrupt:
        starting.close()
        if not started:
            raise RunInterrupted(device.serial, None) from None
        try:
            session.interrupt(device, started[0])
        except EdgekitError as exc:
            raise RunInterrupted(device.serial, started[0], stop_error=exc) from None
        raise RunInterrupted(device.serial, started[0]) from None
    except DeviceError as exc:
        if not started or isinstance(exc, RunLost):
            raise
        raise RunLost(device.serial, started[0], exc) from exc
    finally:
        starting.close()
    if started and observer.collected is not None:
        observer.collected(device.serial, started[0])
    return result


def run_repeats(
    device: Device, campaign: Campaign, observer: Observer = Observer(), stop: threading.Event | None = None
) -> list[BenchResult]:
    """`campaign.repeat` attached runs on `device`, cooling down to the starting battery
    temperature between them unless `campaign.cooldown` is off; `stop` as in run_attached."""
    if campaign.artifact is None:
        raise InputError("give the artifact to benchmark (or --collect RUN_ID / --resume RUN_ID)")
    online = online_supplies(device)
    if online and observer.note is not None:
        observer.note(
            device.serial,
            f"{', '.join(online)} online: the phone runs from the cable, so the battery figure will be void "
            "(speed figures stand). For a battery figure use --detach and unplug when told.",
        )
    start_temp = device.battery().temperature_c
    results = []
    for i in range(campaign.repeat):
        if stop is not None and stop.is_set():
            raise RunInterrupted(device.serial, None)
        if i and campaign.cooldown:
            with observer.status(device.serial, "cooling down to the starting battery temperature…"):
                cool_down(device, start_temp)
        results.append(run_attached(device, campaign.artifact, campaign.config, index=i, observer=observer, stop=stop))
    return results


def _written(serial: str, results: list[BenchResult], campaign: Campaign, *, several: bool) -> DeviceOutcome:
    name = results[-1].device.serial or serial  # redacted when asked
    path = result_path(campaign.output, name, several=several)
    try:
        write_results(results, path)
    except OSError as exc:
        # Checked before the run (Campaign.check_output), so the folder changed meanwhile:
        # what was measured is not lost, it goes where it can and the message says where.
        fallback = _write_fallback(results, path, exc)
        why = f"cannot write the result to {path} ({exc.strerror or exc}): it is in {fallback}"
        return DeviceOutcome(serial=serial, runs=tuple(results), path=fallback, write_error=why)
    return DeviceOutcome(serial=serial, runs=tuple(results), path=path)


def _write_fallback(results: list[BenchResult], path: Path, first: OSError) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    tried = []
    for folder in fallback_dirs():
        target = folder / f"{path.stem}-{stamp}{path.suffix}"
        try:
            write_results(results, target)
        except OSError:
            tried.append(str(folder))
            continue
        return target
    raise InputError(
        f"cannot write the result to {path} ({first.strerror or first}) nor to {' or '.join(tried)}: "
        "free space or fix the folders' permissions"
    ) from first


def run_devices(
    serials: list[str],
    transport: Transport,
    campaign: Campaign,
    observer: Observer = Observer(),
) -> list[DeviceOutcome]:
    """Run `campaign` on every device at the same time (a thread per device: each phone runs
    its own workload, the host only starts, polls, pulls and computes); returns each device's
    outcome in the order of `serials`. An error on one device of several is its outcome and
    the others go on; with one device it is raised (and the run is in this thread).

    Ctrl-C in the calling thread with several devices: every run under way is stopped on
    its phone (as one device's Ctrl-C does), then CampaignInterrupted."""
    several = len(serials) > 1
    campaign.check_output()
    if not several:
        return [_run_one(serials[0], transport, campaign, observer, None, several=False)]
    stop = threading.Event()
    outcomes: dict[str, DeviceOutcome] = {}
    stops: dict[str, RunInterrupted] = {}

    ended = {serial: threading.Event() for serial in serials}

    def work(serial: str) -> None:
        try:
            outcomes[serial] = _run_one(serial, transport, campaign, observer, stop, several=True)
        except RunInterrupted as cut:
            stops[serial] = cut
        except Exception as exc:  # a bug on one device's thread must not lose the others' results
            error = EdgekitError(f"{serial}: internal error: {type(exc).__name__}: {exc}")
            outcomes[serial] = DeviceOutcome(serial=serial, error=error)
        finally:
            ended[serial].set()

    def wait_all() -> None:
        # Events, not Thread.join: here a join that Ctrl-C cut short left its thread looking
        # finished while it still ran, and that phone's stop unreported (test_lab_e2e's Ctrl-C test).
        for event in ended.values():
            while not event.wait(0.2):
                pass

    for serial in serials:
        threading.Thread(target=work, args=(serial,), name=f"battery-bench {serial}", daemon=True).start()
    try:
        wait_all()
    except KeyboardInterrupt:
        stop.set()  # each run stops at its next poll; the signal handler ignores further signals
        wait_all()
        raise CampaignInterrupted([outcomes[s] for s in serials if s in outcomes], list(stops.values())) from None
    if stops:  # no Ctrl-C reached this thread, yet a run was stopped: it is still reported
        raise CampaignInterrupted([outcomes[s] for s in serials if s in outcomes], list(stops.values()))
    return [outcomes[s] for s in serials]


def _run_one(
    serial: str,
    transport: Transport,
    campaign: Campaign,
    observer: Observer,
    stop: threading.Event | None,
    *,
    several: bool,
) -> DeviceOutcome:
    try:
        device = open_device(serial, transport)
        try:
            results = run_repeats(device, campaign, observer, stop)
        finally:
            device.close()
        return _written(serial, results, campaign, several=several)
    except EdgekitError as exc:
        if not several:
            raise
        return DeviceOutcome(serial=serial, error=exc)


def collect(
    device: Device, run_id: str, campaign: Campaign, observer: Observer = Observer(), *, several: bool = False
) -> DeviceOutcome:
    """Pull run `run_id` (a detached or cut-off run) and write its result as `campaign` says
    (`several`: one of several devices' runs, so a given output gets `-<serial>`)."""
    campaign.check_output()
    with observer.status(device.serial, "collecting the run…"):
        result = session.collect(device, run_id)
    return _written(device.serial, [result], campaign, several=several)
