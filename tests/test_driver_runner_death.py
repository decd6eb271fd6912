"""A runner that dies before its FIFOs are open ends its conversation as a runner that dies
mid-run does, and never hangs android_harness/driver.sh (under mksh, Android's sh, and dash).

The window: the driver forks the runner (a copy of its shell, which opens the FIFOs on the
runner's stdin and stdout, then execs the runner) and its watchdog, writes runner.pid, then
opens its own ends of those FIFOs. Here runner.pid is a FIFO nobody reads yet, so the driver
waits in that write while the runner's shell waits in its open of its first FIFO (stdin's
for multi-turn, stdout's for one-shot), whose other end only the driver opens: the runner is
killed there, deterministically before it opened either FIFO, and only then is runner.pid
read. The truth to compare with is the
same driver with a runner that kills itself (SIGKILL) at once, after its FIFOs were open.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import harness_run, require_tool, wait_for

SHELLS = ("mksh", "dash")
TURNS = [["Hello?", "Again?"]]
# A runner that never runs here (it is killed in its shell, before the exec) and, for the
# mid-run case, one that dies at once of SIGKILL, the signal the test kills the other with.
NEVER_RUNS = "#!/bin/sh\necho 'not reached' >&2\nexit 3\n"
DIES_AT_ONCE = "#!/bin/sh\nkill -9 $$\n"
# Bounds that only turn a hang into a failure: the driver ends in seconds.
HANG_S = 120


def _ppid_and_cmdline(pid: str) -> tuple[int, bytes] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1]), cmdline


def _looks_like_the_watchdog(pid: int) -> bool:
    """The watchdog, soon after its fork: it has a child (dash: `sleep 1`; mksh: the mkfifo
    of its nap FIFO) or holds that FIFO on fd 9 (mksh). The runner's shell, waiting in an
    open, has neither."""
    if Path(f"/proc/{pid}/fd/9").exists():
        return True
    return any(
        (found := _ppid_and_cmdline(p)) is not None and found[0] == pid for p in os.listdir("/proc") if p.isdigit()
    )


def _runner_in_its_fork(driver: int) -> int | None:
    """The runner's pid while it is still the driver's shell: of the driver's two children
    that are copies of it (same cmdline: the runner and its watchdog; the sampler exec'd
    sampler.sh), the one that is not the watchdog. None until that is clear."""
    me = _ppid_and_cmdline(str(driver))
    if me is None:
        return None
    forks = [
        int(p)
        for p in os.listdir("/proc")
        if p.isdigit() and (found := _ppid_and_cmdline(p)) is not None and found == (driver, me[1])
    ]
    if len(forks) != 2:
        return None
    runner = [p for p in forks if not _looks_like_the_watchdog(p)]
    return runner[0] if len(runner) == 1 else None


def _events(run_dir: Path) -> list[tuple[str, str, str]]:
    """events.csv without its times, and without the boot id driver_start carries."""
    rows = [tuple(line.split(",")[1:]) for line in (run_dir / "events.csv").read_text().splitlines()]
    return [(name, "-" if name == "driver_start" else key, value) for name, key, value in rows]


def _ended(run_dir: Path, driver: subprocess.Popen[bytes]) -> None:
    assert driver.wait(timeout=HANG_S) == 0, (run_dir / "driver.log").read_text(errors="replace")
    assert (run_dir / "status").read_text() == "done\n"
    assert not (run_dir / "done" / "0001").exists()


def _start(shell: str, run_dir: Path) -> subprocess.Popen[bytes]:
    root = run_dir.parents[1]
    log = (run_dir / "driver.log").open("wb")
    with log:
        return subprocess.Popen(
            [require_tool(shell), str(root / "harness" / "driver.sh"), str(run_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its group: whatever a failed test leaves is killed with it
        )


def _kill_group(driver: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()


@pytest.mark.parametrize("protocol", ["multi_turn", "one_shot"])
@pytest.mark.parametrize("shell", SHELLS)
def test_a_runner_killed_before_it_opens_its_fifos_ends_as_a_crash_not_a_hang(
    tmp_path: Path, shell: str, protocol: str
) -> None:
    run_dir, _ = harness_run(tmp_path / "early", NEVER_RUNS, protocol=protocol, turns=TURNS)
    os.mkfifo(run_dir / "runner.pid")
    driver = _start(shell, run_dir)
    try:
        runner = wait_for(lambda: _runner_in_its_fork(driver.pid), what="the runner's fork", timeout_s=HANG_S)
        os.kill(runner, signal.SIGKILL)
        # Now let the driver write runner.pid (under mksh the runner's SIGCHLD may already
        # have failed that write: EINTR, which the driver lives with) and go on.
        reader = os.open(run_dir / "runner.pid", os.O_RDONLY | os.O_NONBLOCK)
        try:
            _ended(run_dir, driver)
        finally:
            os.close(reader)
    finally:
        _kill_group(driver)

    mid_run, _ = harness_run(tmp_path / "mid-run", DIES_AT_ONCE, protocol=protocol, turns=TURNS)
    reference = _start(shell, mid_run)
    try:
        _ended(mid_run, reference)
    finally:
        _kill_group(reference)
    # The same record as a runner dying of the same signal once its FIFOs were open: the
    # conversation ends with the runner's status (128 + SIGKILL), and the run stops there.
    assert _events(run_dir) == _events(mid_run)
    assert ("conv_end", "0001", "137") in _events(run_dir)
    assert ("first_failed", "0001", "0") in _events(run_dir)
