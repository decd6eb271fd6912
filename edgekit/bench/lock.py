"""One battery-bench run per phone at a time: a lock file on the phone.

`<work root>/bench.lock` (/data/local/tmp/edgekit/bench.lock) holds three lines:

    run_id=20261125-143000-a1b2c3
    started=2026-11-25T14:30:00+00:00      the host's clock, for people
    epoch=1795530600                       the phone's clock (`date +%s`), for staleness

It is written whole to a temporary name and then hard-linked to `bench.lock` (`ln` fails
when the name exists: taking the lock is one atomic step, and a reader never sees half a
lock). The run's driver.sh removes it when it ends, however it ends but SIGKILL. A lock is
stale, and taken over, when its run is done, when the driver pid the run recorded is no
longer a live driver.sh (gone, a zombie, or a pid reused by something else), or when no
driver has recorded a pid START_GRACE_S after the lock was taken (a start cut off).
"""

from __future__ import annotations

import dataclasses
import datetime
import shlex

from edgekit.bench import run_folder
from edgekit.device.base import Device
from edgekit.errors import CommandFailed, DeviceBusy, DeviceError

LOCK_NAME = "bench.lock"
START_GRACE_S = 600
"""From taking the lock to the driver writing its pid: preparing the phone and pushing the run folder."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class LockHolder:
    """The run that holds a phone's lock."""

    run_id: str
    started: str


def _check_script(root: str) -> str:
    """A script that prints `live RUN_ID STARTED`, `stale RUN_ID` or `none` for the lock under `root`."""
    r = shlex.quote(root)
    return (
        f"L={r}/{LOCK_NAME}; "
        'if [ ! -e "$L" ]; then echo none; else '
        "id=; started=; epoch=; "
        "while IFS== read -r k v; do "
        'case $k in run_id) id=$v;; started) started=$v;; epoch) epoch=$v;; esac; done < "$L"; '
        f'R={r}/runs/$id; st=; [ -r "$R/status" ] && read -r st < "$R/status"; p=; '
        '[ -r "$R/driver.pid" ] && read -r p < "$R/driver.pid"; '
        'if [ -z "$id" ] || [ "$st" = done ]; then echo "stale $id"; '
        'elif [ -n "$p" ]; then '
        f"  if {run_folder.driver_test()}; "
        '  then echo "live $id $started"; else echo "stale $id"; fi; '
        f'elif [ $(( $(date +%s) - ${{epoch:-0}} )) -lt {START_GRACE_S} ]; then echo "live $id $started"; '
        'else echo "stale $id"; fi; fi'
    )


def _parse(out: str) -> tuple[str, LockHolder | None]:
    words = out.split()
    if not words or words[0] not in ("live", "stale", "none", "ok", "took"):
        raise DeviceError(f"unexpected answer from the phone's lock check: {out.strip()!r}")
    if words[0] == "live" and len(words) >= 2:
        return "live", LockHolder(run_id=words[1], started=words[2] if len(words) > 2 else "unknown")
    return words[0], None


def holder(device: Device) -> LockHolder | None:
    """The live run that holds `device`'s lock, or None (no lock, or a stale one)."""
    state, who = _parse(device.script(_check_script(device.work_root), check=False).stdout)
    return who if state == "live" else None


def busy_message(serial: str, who: LockHolder) -> str:
    """One line: which run holds the phone, and what to do (without the serial in front:
    DeviceBusy writes it)."""
    return (
        f"run {who.run_id} (started {who.started}) is running on this phone: one run per phone at "
        f"a time; wait for it to end, or stop it (`edgekit battery-bench --device {serial} --collect "
        f"{who.run_id}` says how far it is)"
    )


def acquire(device: Device, run_id: str) -> None:
    """Take `device`'s lock for run `run_id`, taking over a stale lock (or this run's own);
    DeviceBusy when another live run holds it."""
    root = device.work_root
    tmp = f"{root}/.{LOCK_NAME}.{run_id}"
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    q = shlex.quote
    script = (
        f"mkdir -p {q(root)} && "
        f"printf 'run_id=%s\\nstarted=%s\\nepoch=%s\\n' {q(run_id)} {q(started)} \"$(date +%s)\" > {q(tmp)} || exit 1; "
        f"if ln {q(tmp)} {q(root + '/' + LOCK_NAME)} 2>/dev/null; then rm -f {q(tmp)}; echo ok; exit 0; fi; "
        f"state=$({_check_script(root)}); "
        f'case $state in "live {run_id} "*|"stale "*) mv -f {q(tmp)} {q(root + "/" + LOCK_NAME)}; echo took;; '
        f'*) rm -f {q(tmp)}; echo "$state";; esac'
    )
    result = device.script(script, check=False)
    state, who = _parse(result.stdout)
    if state == "live" and who is not None:
        raise DeviceBusy(busy_message(device.serial, who), serial=device.serial, run_id=who.run_id)
    if state not in ("ok", "took"):
        raise CommandFailed(
            device,
            f"could not take the phone's run lock: {result.stdout.strip()}",
            returncode=result.returncode,
            stderr=result.stderr,
        )


def release(device: Device, run_id: str) -> None:
    """Remove `device`'s lock if it names run `run_id` (another run's lock is left alone)."""
    lock = shlex.quote(f"{device.work_root}/{LOCK_NAME}")
    want = shlex.quote("run_id=" + run_id)
    device.script(
        f'lid=; {{ read -r lid < {lock}; }} 2>/dev/null; [ "$lid" = {want} ] && rm -f {lock}; true',
        check=False,
    )
