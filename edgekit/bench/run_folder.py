"""A run folder on the device: prepare it, start its driver detached, watch, stop, and read its
files back to the host (`read_files` -> RunFiles).

A run lives in `<work root>/runs/<run_id>/` on the device:

    run.env              settings for driver.sh / sampler.sh (written here, quoted; files
                         named relative to the work root)
    conv/NNNN.txt        the conversations, one user turn per line (user text only in files)
    events.csv           t_ms,event,conversation,turn   (device monotonic clock, /proc/uptime)
    samples.csv          t_ms,charge_counter,current_now,voltage_now,capacity,temp,status,supplies,screen,thermal
    out/NNNN.txt         multi-turn: the runner's stdout (answers between its prompts)
    err/NNNN.txt         multi-turn: the runner's stderr (absl log lines, BenchmarkInfo)
    out/NNNN.K.txt       one-shot: turn K's stdout (prompt echo, answer, BenchmarkInfo)
    err/NNNN.K.txt       one-shot: turn K's stderr
    err/NNNN.logcat      after a runner failure: logcat crash-buffer lines, where readable
    done/NNNN            one marker per finished conversation (resume skips them)
    status               running | done
    meta.json            what the host knew at start (RunMeta: device, artifact, workload, runner,
                         settings, the phone's state); only edgekit reads it back
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import posixpath
import secrets
import shlex
import tempfile
from pathlib import Path

from msgspec import UNSET, UnsetType

from edgekit import runtimes
from edgekit._typed import from_data, to_json
from edgekit.bench.gauge import PowerSample
from edgekit.bench.phone import PhoneState
from edgekit.bench.result import ArtifactRecord, BenchSettings, RunnerRecord, StartState, WorkloadRecord
from edgekit.bench.workload import Workload
from edgekit.device import parsers
from edgekit.device.base import BatterySample, Device, DeviceFacts
from edgekit.errors import CommandFailed, InputError
from edgekit.probe import Protocol


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunMeta:
    """What the host knew when a run started (meta.json on the phone); a local run has one too,
    never written. The result's device, artifact, workload, runner and settings come from it."""

    run_id: str
    created: str
    """UTC, ISO 8601 to the second."""
    device: DeviceFacts
    artifact: ArtifactRecord
    workload: WorkloadRecord
    runner: RunnerRecord
    settings: BenchSettings
    start: StartState | UnsetType = UNSET
    """Left out of meta files from before it was recorded."""
    phone: PhoneState = dataclasses.field(default_factory=PhoneState)
    """Phone runs: the screen as the run found it and what edgekit changed (restore_phone)."""
    battery_start: BatterySample | UnsetType = UNSET
    supplies_online_start: tuple[str, ...] | UnsetType | None = UNSET
    """Phone runs: the external supplies online at the start (None: the phone does not say)."""
    harness: str = ""
    """Phone runs: the harness folder on the device (driver.sh), for --resume."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunPaths:
    """Where a run's files are on the device."""

    run_id: str
    run_dir: str
    harness_dir: str


def new_run_id() -> str:
    """A fresh run id: local time, then 6 random hex digits (20261125-143000-a1b2c3)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def run_paths(device: Device, run_id: str, harness_dir: str) -> RunPaths:
    """The device folder of run `run_id`."""
    return RunPaths(run_id=run_id, run_dir=f"{device.work_root}/runs/{run_id}", harness_dir=harness_dir)


def prepare(
    device: Device,
    paths: RunPaths,
    *,
    runner: str,
    model: str,
    workload: Workload,
    flags: list[str],
    protocol: Protocol,
    turn_timeout_s: int,
    answer_cap_words: int,
    answer_cap_bytes: int,
    sample_period_s: float,
    baseline_s: float,
    meta: RunMeta,
    power_env: dict[str, str] | None = None,
    chat_template: str | None = None,
) -> None:
    """Create the run folder on the device: run.env, one file per conversation, meta.json.

    The last check before the phone: a value driver.sh cannot take is an InputError (one
    line), never a ValueError. BenchConfig.__post_init__ checks the user's numbers first."""
    for flag in flags:  # driver.sh splits RUNNER_FLAGS on spaces
        if any(c.isspace() for c in flag):
            raise InputError(f"runner flag {flag!r} contains whitespace: driver.sh splits the runner's flags on spaces")
    if turn_timeout_s < 1 or answer_cap_words < 1 or answer_cap_bytes < 1:
        raise InputError(
            f"turn timeout {turn_timeout_s} s, answer cap {answer_cap_words} words / {answer_cap_bytes} bytes: "
            "each must be at least 1"
        )
    if not (math.isfinite(sample_period_s) and sample_period_s > 0 and math.isfinite(baseline_s) and baseline_s >= 0):
        raise InputError(
            f"sample period {sample_period_s} s and baseline {baseline_s} s must be finite, the period > 0, "
            "the baseline >= 0: check --sample-s and --baseline-s"
        )
    root = device.work_root.rstrip("/") + "/"

    def relative(path: str) -> str:
        if not path.startswith(root):
            raise InputError(f"{path} is not under the device's work root {root}: deploy there first")
        return path[len(root) :]

    env = {
        "RUNNER": relative(runner),
        "RUNNER_DIR": posixpath.dirname(relative(runner)),
        "MODEL": relative(model),
        "RUNNER_FLAGS": " ".join(flags),
        "PROTOCOL": protocol,
        **runtimes.for_protocol(protocol).driver_env(protocol),
        "TURN_TIMEOUT_S": str(int(turn_timeout_s)),
        "ANSWER_CAP_WORDS": str(int(answer_cap_words)),
        "ANSWER_CAP_BYTES": str(int(answer_cap_bytes)),
        "SAMPLE_S": f"{sample_period_s:g}",
        "BASELINE_S": f"{baseline_s:g}",
        "HARNESS": relative(paths.harness_dir),
        **({"CHAT_TEMPLATE": relative(chat_template)} if chat_template else {}),
        **(power_env or {}),
    }
    device.shell(["mkdir", "-p", f"{paths.run_dir}/conv"])
    with tempfile.TemporaryDirectory(prefix="edgekit-run-") as tmp:
        local = Path(tmp)
        (local / "run.env").write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()))
        (local / "meta.json").write_text(to_json(meta))
        device.push(local / "run.env", f"{paths.run_dir}/run.env")
        device.push(local / "meta.json", f"{paths.run_dir}/meta.json")
        for n, conv in enumerate(workload.conversations, 1):
            f = local / f"{n:04d}.txt"
            f.write_text("".join(turn + "\n" for turn in conv.turns))
            device.push(f, f"{paths.run_dir}/conv/{n:04d}.txt")


def start(device: Device, paths: RunPaths) -> None:
    """Start driver.sh in its own session, detached: it survives the host and the cable going away."""
    driver = f"{paths.harness_dir}/driver.sh"
    log = f"{paths.run_dir}/driver.log"
    # No setsid (deploy checks): started in the background all the same; driver.sh ignores SIGHUP.
    run = f"sh {shlex.quote(driver)} {shlex.quote(paths.run_dir)} < /dev/null > {shlex.quote(log)} 2>&1"
    script = (
        f"cd {shlex.quote(paths.run_dir)} && rm -f stop runner.pid && "
        f"if command -v setsid >/dev/null 2>&1; then (setsid {run} &); else ({run} &); fi"
    )
    device.script(script)


def status(device: Device, paths: RunPaths) -> tuple[str, int]:
    """(status, conversations finished) of a run: status is running, done, or missing."""
    script = (
        f"cat {shlex.quote(paths.run_dir + '/status')} 2>/dev/null || echo missing; "
        f"ls {shlex.quote(paths.run_dir + '/done')} 2>/dev/null | wc -l"
    )
    out = device.script(script, check=False).stdout.split()
    state = out[0] if out else "missing"
    done = int(out[1]) if len(out) > 1 and out[1].isdigit() else 0
    return state, done


def driver_test() -> str:
    """A shell test: is the pid in shell variable `p` a run's live driver?

    Its cmdline names driver.sh: a zombie (empty cmdline), a pid already reaped and a pid
    the kernel gave to another process all fail it. (`kill -0` plus the state in
    /proc/PID/stat did not: a zombie reaped between the two reads looked alive, and a
    --collect right after a stop answered "still running".)"""
    return """kill -0 "$p" 2>/dev/null && grep -q 'driver[.]sh' "/proc/$p/cmdline" 2>/dev/null"""


def driver_alive(device: Device, paths: RunPaths) -> bool:
    """True while the run's driver process is alive."""
    pid_file = shlex.quote(paths.run_dir + "/driver.pid")
    script = f"p=$(cat {pid_file} 2>/dev/null) && {driver_test()}"
    return device.script(script, check=False).returncode == 0


def stop(device: Device, paths: RunPaths) -> None:
    """Stop a run: its driver, sampler, runner and the runner's watchdog (Ctrl-C, --resume tests).

    SIGTERM to the driver first, so that it stops its children and restores the phone
    itself (driver.sh's trap); then SIGKILL to every pid the run recorded, each on its own
    and to its process group: without setsid there is no group of the driver's, and the
    runner would outlive it."""
    run = shlex.quote(paths.run_dir)
    alive = driver_test()
    # The stop file first: a driver or sampler still starting up exits when it sees it.
    # A pid file may be there but not yet written: give it a moment.
    device.script(
        f": > {run}/stop; f={run}/driver.pid; p=; n=0; "
        f'while [ -z "$p" ] && [ $n -lt 10 ] && [ -e "$f" ]; do p=$(cat "$f" 2>/dev/null); '
        f'[ -z "$p" ] && sleep 0.1; n=$((n + 1)); done; '
        f'if [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; then n=0; '
        f"while [ $n -lt 50 ] && {alive}; do sleep 0.1; n=$((n + 1)); done; fi; "
        f"for p in $(cat {run}/driver.pid {run}/sampler.pid {run}/runner.pid 2>/dev/null); do "
        f'kill -9 -"$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done; true',
        check=False,
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    """One line of the driver's events.csv (driver.sh `event NAME CONVERSATION TURN`)."""

    t_s: float
    """Seconds on the device's monotonic clock (/proc/uptime)."""
    name: str
    """What happened: driver_start, baseline_start, workload_start, conv_start, turn_send, turn_first,
    turn_end, turn_timeout, conv_end, first_failed, workload_end, unplugged, ... (driver.sh)."""
    conversation: str
    """The conversation's key (0001) for its own events, "0" for the run's; driver_start: the boot id."""
    turn: int
    """The turn (1-based; 0 for a conversation's or the run's own event); conv_end: the runner's exit code."""


def parse_events(text: str) -> list[Event]:
    """events.csv lines -> Events, in the order the driver wrote them (a torn last line is left out)."""
    events = []
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) == 4 and parts[0].isdigit():
            t_ms, name, conversation, turn = parts
            n = int(turn) if turn.isdigit() else 0
            events.append(Event(t_s=int(t_ms) / 1000, name=name, conversation=conversation, turn=n))
    return events


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunFiles:
    """A run folder's contents, pulled to the host."""

    meta: RunMeta
    events: list[Event]
    samples: list[PowerSample]
    outputs: dict[str, str]
    errors: dict[str, str]
    crash_logs: dict[str, str]
    done: set[str]
    status: str
    restored: bool = False
    """The driver put the phone's settings back itself (RUN_DIR/restored)."""


def read_files(device: Device, paths: RunPaths) -> RunFiles:
    """The run folder's files, read from the device (text files through the shell)."""
    run = paths.run_dir
    argv = ["test", "-f", f"{run}/meta.json"]
    test = device.shell(argv, check=False)
    if test.returncode != 0:
        raise CommandFailed(
            device, f"no run {paths.run_id} on the device", cmd=shlex.join(argv), returncode=test.returncode
        )

    def cat(name: str) -> str:
        return device.shell(["cat", f"{run}/{name}"], check=False).stdout

    def listing(folder: str) -> list[str]:
        return device.shell(["ls", f"{run}/{folder}"], check=False).stdout.split()

    outputs = {name[:-4]: cat(f"out/{name}") for name in listing("out") if name.endswith(".txt")}
    err_names = listing("err")
    errors = {name[:-4]: cat(f"err/{name}") for name in err_names if name.endswith(".txt")}
    crash_logs = {name[:-7]: cat(f"err/{name}") for name in err_names if name.endswith(".logcat")}
    return RunFiles(
        meta=read_meta(cat("meta.json"), f"run {paths.run_id}: meta.json"),
        events=parse_events(cat("events.csv")),
        samples=parse_samples(cat("samples.csv")),
        outputs=outputs,
        errors=errors,
        crash_logs=crash_logs,
        done=set(listing("done")),
        status=(cat("status").strip() or "missing"),
        restored=device.shell(["test", "-e", f"{run}/restored"], check=False).returncode == 0,
    )


def read_meta(text: str, what: str) -> RunMeta:
    """meta.json's text as a RunMeta (every meta.json an earlier edgekit wrote reads); InputError naming `what`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: not valid JSON ({exc.msg})") from exc
    return from_data(data, RunMeta, what)


def parse_samples(text: str) -> list[PowerSample]:
    """samples.csv lines -> PowerSample (missing fields None, never 0).

    Ten fields (sampler.sh); the first seven alone in runs from before supplies, screen and
    thermal were sampled.
    """

    out = []
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) not in (7, 10) or not parts[0].isdigit():
            continue
        t_ms, cc, cur, vol, cap, temp, st = parts[:7]
        supplies, screen, thermal = parts[7:] if len(parts) == 10 else ("", "", "")
        temp_dc = parsers.parse_int(temp)
        out.append(
            PowerSample(
                t_s=int(t_ms) / 1000,
                charge_counter_uah=parsers.parse_int(cc),
                current_raw=parsers.parse_int(cur),
                voltage_uv=parsers.parse_int(vol),
                level_pct=parsers.parse_int(cap),
                temperature_c=None if temp_dc is None else temp_dc / 10,
                status=parsers.parse_sysfs_status(st) if st.strip() else None,
                supplies=supplies.strip() or None,
                screen=screen.strip() or None,
                thermal=parsers.parse_int(thermal),
            )
        )
    return out
