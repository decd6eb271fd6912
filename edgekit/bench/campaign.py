"""battery-bench as a command line runs it: every device at once, repeats, aggregation
and where each result file goes. The `battery-bench` command is this module, `bench.detached`
(detached runs started and collected on many devices) and rendering.

    run_devices(serials, transport, campaign)   list[DeviceOutcome], the devices at the same time
    run_repeats(device, campaign)               the attached runs on one device: artifacts
                                                interleaved (A, B, A, B…), cool-down between
    collect_outcome(device, run_id, campaign)   DeviceOutcome: a detached run collected, its result
                                                written like an attached run's
    write_results(results, path)                run files + the aggregate in the last result
    result_path(output, name, several=...)      where a device's (and artifact's) result goes

Several artifacts run interleaved on each phone, so that a battery or a temperature that
drifts over the campaign weighs on every artifact alike; each run records its start charge
and temperature (BenchResult.start). A run of one artifact that fails is that artifact's
outcome: the phone goes on with the others' runs.

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
from edgekit.bench.result import CAMPAIGN_FILE, BenchResult, CampaignArtifact, CampaignCell, CampaignRecord
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
    """What to run on each device: each of `artifacts` with `config`, `repeat` times, interleaved
    (A, B, A, B…), results to `output`.

    `output` None: `edgekit-results/<local time>-<serial>.json` per device. With several
    devices a given `output` gets `-<serial>` before its extension, with several artifacts
    also `-<artifact label>` (labels()); with `repeat` > 1 each run is also kept as
    `<output stem>-runN<suffix>` and the main file carries the aggregate.
    """

    artifacts: tuple[Path, ...]
    """Empty for --collect and --resume, which name a run instead."""
    config: BenchConfig
    repeat: int = 1
    cooldown: bool = True
    output: Path | None = None

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise InputError(f"--repeat must be at least 1, got {self.repeat}")

    def labels(self) -> tuple[str, ...]:
        """Each artifact's name in result file names: its file's stem, numbered from 1
        (`1-model`, `2-model`) when two stems are the same."""
        stems = [a.stem for a in self.artifacts]
        if len(set(stems)) == len(stems):
            return tuple(stems)
        return tuple(f"{i}-{stem}" for i, stem in enumerate(stems, 1))

    def order(self) -> list[tuple[int, int]]:
        """The runs on each phone in the order they run, as (repeat, artifact index): A, B, A, B…"""
        return [(r, k) for r in range(self.repeat) for k in range(len(self.artifacts))]

    @property
    def folder(self) -> Path | None:
        """`output` when it names a folder (an existing one, or a path without an extension):
        one result file per run in it, and a campaign.json that `edgekit report DIR` reads."""
        return self.output if self.output is not None and is_folder(self.output) else None

    def check_output(self) -> None:
        """Refuse, before anything runs, an output whose folder cannot take the result."""
        if self.folder is not None:
            check_writable(self.folder / CAMPAIGN_FILE, make_folders=True)
            return
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
    artifact: Path | None = None
    """Set in a campaign of several artifacts: this outcome is that artifact's runs on `serial`."""
    runs: tuple[BenchResult, ...] = ()
    path: Path | None = None
    error: EdgekitError | None = None
    """What stopped the device, or (with `artifact`) the first of this artifact's runs that raised."""
    write_error: str | None = None
    """Set when the result could not be written where asked: `path` is then the fallback."""

    @property
    def name(self) -> str:
        """The device, and the artifact when a campaign has several: how messages name this outcome."""
        return self.serial if self.artifact is None else f"{self.serial} {self.artifact.name}"

    @property
    def result(self) -> BenchResult | None:
        """The result written to `path` (with the aggregate of the runs when there are several)."""
        return self.runs[-1] if self.runs else None

    @property
    def exit_code(self) -> int:
        """The worst exit code of the runs and the error's."""
        codes = [r.exit_code() for r in self.runs]
        if self.error is not None:
            codes.append(self.error.exit_code)
        if self.write_error:
            codes.append(InputError.exit_code)
        return max(codes)


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


def is_folder(output: Path) -> bool:
    """True when -o names a folder: an existing one, or a path with no extension."""
    return output.is_dir() or not output.suffix


def result_path(
    output: Path | None,
    name: str,
    *,
    several: bool,
    artifact: str | None = None,
    now: datetime.datetime | None = None,
) -> Path:
    """Where the result of device `name` (its serial, or its redacted serial) goes; `artifact`:
    the label (Campaign.labels) of one of several artifacts, added after the device."""
    safe = re.sub(r"[^0-9A-Za-z._-]+", "_", name)
    tail = "" if artifact is None else "-" + re.sub(r"[^0-9A-Za-z._-]+", "_", artifact)
    if output is None:
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        return RESULTS_DIR / f"{stamp}-{safe}{tail}.json"
    if is_folder(output):
        return output / f"{safe}{tail}.json"
    if several:
        return output.with_name(f"{output.stem}-{safe}{tail}{output.suffix}")
    return output.with_name(f"{output.stem}{tail}{output.suffix}") if tail else output


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
) -> list[list[BenchResult | EdgekitError]]:
    """Every run of `campaign` on `device`, attached: the artifacts interleaved, `repeat`
    rounds of A, B, … (Campaign.order), cooling down to the starting battery temperature
    before every run but the first unless `campaign.cooldown` is off; `stop` as in
    run_attached. Returns each artifact's runs in order, a run that raised as its error.

    With one artifact an error is raised; with several it is that run's, and the phone goes
    on with the next run (a lost link ends the phone's runs: its run goes on over there)."""
    if not campaign.artifacts:
        raise InputError("give the artifact to benchmark (or --collect RUN_ID / --resume RUN_ID)")
    online = online_supplies(device)
    if online and observer.note is not None:
        observer.note(
            device.serial,
            f"{', '.join(online)} online: the phone runs from the cable, so the battery figure will be void "
            "(speed figures stand). For a battery figure use --detach and unplug when told.",
        )
    start_temp = device.battery().temperature_c
    runs: list[list[BenchResult | EdgekitError]] = [[] for _ in campaign.artifacts]
    for i, (_round, k) in enumerate(campaign.order()):
        if stop is not None and stop.is_set():
            raise RunInterrupted(device.serial, None)
        if i and campaign.cooldown:
            with observer.status(device.serial, "cooling down to the starting battery temperature…"):
                cool_down(device, start_temp)
        artifact = campaign.artifacts[k]
        try:
            runs[k].append(run_attached(device, artifact, campaign.config, index=i, observer=observer, stop=stop))
        except EdgekitError as exc:
            if len(campaign.artifacts) == 1:
                raise
            runs[k].append(exc)
            if isinstance(exc, RunLost):
                break
    return runs


def _written(
    serial: str,
    results: list[BenchResult],
    campaign: Campaign,
    *,
    several: bool,
    artifact: int | None = None,
    error: EdgekitError | None = None,
) -> DeviceOutcome:
    """Write `results` (one device's, of artifact index `artifact` of several) where `campaign` says."""
    which = None if artifact is None else campaign.artifacts[artifact]
    if not results:
        return DeviceOutcome(serial=serial, artifact=which, error=error)
    name = results[-1].device.serial or serial  # redacted when asked
    label = None if artifact is None else campaign.labels()[artifact]
    path = result_path(campaign.output, name, several=several, artifact=label)
    try:
        write_results(results, path)
    except OSError as exc:
        # Checked before the run (Campaign.check_output), so the folder changed meanwhile:
        # what was measured is not lost, it goes where it can and the message says where.
        fallback = _write_fallback(results, path, exc)
        why = f"cannot write the result to {path} ({exc.strerror or exc}): it is in {fallback}"
        return DeviceOutcome(
            serial=serial, artifact=which, runs=tuple(results), path=fallback, error=error, write_error=why
        )
    return DeviceOutcome(serial=serial, artifact=which, runs=tuple(results), path=path, error=error)


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
    its own workload, the host only starts, polls, pulls and computes); returns the outcomes
    in the order of `serials` (with several artifacts, one per artifact, in their order). An
    error on one device of several is its outcome and the others go on; with one device it
    is raised (and the run is in this thread).

    Ctrl-C in the calling thread with several devices: every run under way is stopped on
    its phone (as one device's Ctrl-C does), then CampaignInterrupted."""
    several = len(serials) > 1
    campaign.check_output()
    if not several:
        return _record(campaign, _run_one(serials[0], transport, campaign, observer, None, several=False))
    stop = threading.Event()
    outcomes: dict[str, list[DeviceOutcome]] = {}
    stops: dict[str, RunInterrupted] = {}

    ended = {serial: threading.Event() for serial in serials}

    def work(serial: str) -> None:
        try:
            outcomes[serial] = _run_one(serial, transport, campaign, observer, stop, several=True)
        except RunInterrupted as cut:
            stops[serial] = cut
        except Exception as exc:  # a bug on one device's thread must not lose the others' results
            error = EdgekitError(f"{serial}: internal error: {type(exc).__name__}: {exc}")
            outcomes[serial] = [DeviceOutcome(serial=serial, error=error)]
        finally:
            ended[serial].set()

    def wait_all() -> None:
        # Events, not Thread.join: here a join that Ctrl-C cut short left its thread looking
        # finished while it still ran, and that phone's stop unreported (test_lab_e2e's Ctrl-C test).
        for event in ended.values():
            while not event.wait(0.2):
                pass

    def ended_outcomes() -> list[DeviceOutcome]:
        return [o for s in serials for o in outcomes.get(s, [])]

    for serial in serials:
        threading.Thread(target=work, args=(serial,), name=f"battery-bench {serial}", daemon=True).start()
    try:
        wait_all()
    except KeyboardInterrupt:
        stop.set()  # each run stops at its next poll; the signal handler ignores further signals
        wait_all()
        raise CampaignInterrupted(ended_outcomes(), list(stops.values())) from None
    if stops:  # no Ctrl-C reached this thread, yet a run was stopped: it is still reported
        raise CampaignInterrupted(ended_outcomes(), list(stops.values()))
    return _record(campaign, ended_outcomes())


def _record(campaign: Campaign, outcomes: list[DeviceOutcome]) -> list[DeviceOutcome]:
    """With `-o DIR`: the campaign's record (campaign.json) beside its result files."""
    folder = campaign.folder
    if folder is None:
        return outcomes
    labels = dict(zip(campaign.artifacts, campaign.labels(), strict=True))

    def relative(path: Path | None) -> str | None:
        return None if path is None else (path.name if path.parent == folder else str(path))

    cells = []
    for o in outcomes:
        artifact = (
            o.artifact if o.artifact is not None else (campaign.artifacts[0] if len(campaign.artifacts) == 1 else None)
        )
        runs = [run_path(o.path, i) for i in range(1, len(o.runs) + 1)] if o.path and len(o.runs) > 1 else [o.path]
        cells.append(
            CampaignCell(
                device=o.result.device.serial if o.result is not None else o.serial,
                artifact=None if artifact is None else labels[artifact],
                result=relative(o.path),
                runs=tuple(r for r in (relative(p) for p in runs) if r is not None),
                exit_code=o.exit_code,
                error=None if o.error is None else str(o.error),
            )
        )
    record = CampaignRecord(
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        repeat=campaign.repeat,
        artifacts=tuple(CampaignArtifact(label=labels[a], name=a.name, path=str(a)) for a in campaign.artifacts),
        cells=tuple(cells),
    )
    try:
        record.write(folder / CAMPAIGN_FILE)
    except OSError as exc:  # the results are written: say so, and where
        raise InputError(
            f"cannot write {folder / CAMPAIGN_FILE} ({exc.strerror or exc}); the result files are in {folder}"
        ) from exc
    return outcomes


def _run_one(
    serial: str,
    transport: Transport,
    campaign: Campaign,
    observer: Observer,
    stop: threading.Event | None,
    *,
    several: bool,
) -> list[DeviceOutcome]:
    try:
        with open_device(serial, transport) as device:
            runs = run_repeats(device, campaign, observer, stop)
        if len(campaign.artifacts) == 1:
            return [_written(serial, [r for r in runs[0] if isinstance(r, BenchResult)], campaign, several=several)]
        outcomes = []
        for k, mine in enumerate(runs):
            results = [r for r in mine if isinstance(r, BenchResult)]
            errors = [r for r in mine if isinstance(r, EdgekitError)]
            if not mine:  # never ran: an earlier run lost the phone
                lost = next((e for r in runs for e in r if isinstance(e, RunLost)), None)
                errors = [EdgekitError(f"not run: {lost}")] if lost else []
            outcome = _written(serial, results, campaign, several=several, artifact=k, error=next(iter(errors), None))
            outcomes.append(outcome)
        return outcomes
    except EdgekitError as exc:
        if not several:
            raise
        return [DeviceOutcome(serial=serial, error=exc)]


def collect_outcome(
    device: Device, run_id: str, campaign: Campaign, observer: Observer = Observer(), *, several: bool = False
) -> DeviceOutcome:
    """Collect run `run_id` (a detached or cut-off run: `session.collect`) and write its result
    as `campaign` says; the outcome names the file (`several`: one of several devices' runs,
    so a given output gets `-<serial>`)."""
    campaign.check_output()
    with observer.status(device.serial, "collecting the run…"):
        result = session.collect(device, run_id)
    return _written(device.serial, [result], campaign, several=several)
