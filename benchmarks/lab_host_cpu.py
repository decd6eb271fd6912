"""The host's own CPU work per phone when battery-bench runs several phones at once (issue 16, item 2).

Emulated phones (edgekit.testing) behind two real adb servers (the adb adbutils ships),
half of them on each; `edgekit battery-bench --adb-server A --adb-server B --device all`
runs in a child process. Counted as the host's work: that process and every process it
waited for (its `adb push`/`pull`: the rusage wait4() reports for that child), plus what
the two adb servers used meanwhile (/proc/PID/stat of each). Not counted: the emulated
phones (threads of this script) and the shells and runner stand-ins they start: that is
the phones' work, which a real phone does on its own CPU.

For each phone count it prints the wall time, the host CPU seconds in total and per
phone, and the host CPU per phone as a share of one core over the run.

    .venv/bin/python benchmarks/lab_host_cpu.py [--phones 1 2 4] [--conversations 2] [--turn-s 1.0]

The tiny example model is built and converted first (about a minute). `--turn-s` pads
every turn on the phones (EDGEKIT_STANDIN_TURN_S), so that a run lasts as a phone's would
and the host's polling is counted over that time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgekit.device import AdbServer
from edgekit.device.adb import adb_binary, ensure_server
from edgekit.device.direct import ensure_adb_key
from edgekit.runtimes.litert_lm.runner_standin import write_runner_standin
from edgekit.testing.emulator import AdbDeviceEmulator

REPO = Path(__file__).resolve().parent.parent
CHAT25 = REPO / "android_harness" / "workloads" / "chat-25.jsonl"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _server_pid(port: int) -> int:
    """The pid of the adb server listening on `port` (its socket's inode in /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # LISTEN
            inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        except OSError:
            continue
        if any(f"socket:[{i}]" in links for i in inodes):
            return int(proc.name)
    raise RuntimeError(f"no process listens on {port}")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def run(
    phones: int,
    artifact: Path | list[Path],
    work: Path,
    conversations: int,
    turn_s: float,
    *,
    one_by_one: bool = False,
) -> dict[str, float]:
    """battery-bench on `phones` emulated phones behind two adb servers: one invocation over
    `--device all` with every artifact (A/B on each phone, phones in parallel), or with
    `one_by_one` one invocation per phone and artifact after another. Wall time and host CPU."""
    artifacts = artifact if isinstance(artifact, list) else [artifact]
    work.mkdir(parents=True, exist_ok=True)
    home = work / f"home{phones}"
    key = ensure_adb_key(home / ".android" / "adbkey")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANDROID_ADB", "ADB_SERVER"))}
    env["HOME"] = str(home)
    servers = [AdbServer(host="127.0.0.1", port=_free_port()) for _ in range(2)]
    for s in servers:
        subprocess.run([adb_binary(), "-P", str(s.port), "start-server"], env=env, check=True, capture_output=True)
    emus = [
        AdbDeviceEmulator(work / f"p{phones}-{i}", trusted_keys=[key.with_name("adbkey.pub").read_bytes()]).start()
        for i in range(phones)
    ]
    try:
        for i, emu in enumerate(emus):
            emu.extra_env["EDGEKIT_STANDIN_TURN_S"] = str(turn_s)
            ensure_server(server=servers[i % 2]).connect(emu.serial, timeout=10)
        time.sleep(1.0)  # the servers finish their handshakes with the phones
        lines = CHAT25.read_text().splitlines()
        workload = work / "workload.jsonl"
        workload.write_text("\n".join(lines[: conversations + 1]) + "\n")
        runner = write_runner_standin(work / "litert_lm_main")
        common = ["--no-cooldown", "--runner", str(runner), "--workload", str(workload), "--baseline-s", "2"]
        if one_by_one:
            jobs = [
                ["--adb-server", str(servers[i % 2]), "--device", f"{servers[i % 2]}/{emu.serial}", str(a)]
                for i, emu in enumerate(emus)
                for a in artifacts
            ]
        else:
            every = [w for s in servers for w in ("--adb-server", str(s))]
            jobs = [[*every, "--device", "all", *map(str, artifacts)]]
        pids = [_server_pid(s.port) for s in servers]
        servers_before = sum(_cpu_s(p) for p in pids)
        wall = host_cpu = 0.0
        for n, job in enumerate(jobs):
            argv = [sys.executable, "-m", "edgekit", "battery-bench", *common, "-o", str(work / f"r{phones}-{n}"), *job]
            log = work / f"bench{phones}-{n}.log"
            start = time.perf_counter()
            with log.open("w") as out:
                proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
                # wait4: the CPU of this child and of what it waited for, not of the phones' processes
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
            wall += time.perf_counter() - start
            host_cpu += usage.ru_utime + usage.ru_stime
            if proc.returncode not in (0, 6):  # 6: a simulated battery figure void; the run itself stands
                raise RuntimeError(f"battery-bench exited {proc.returncode}: {log.read_text()[-2000:]}")
        adb_cpu = sum(_cpu_s(p) for p in pids) - servers_before
    finally:
        for emu in emus:
            emu.stop()
        for s in servers:
            subprocess.run([adb_binary(), "-P", str(s.port), "kill-server"], env=env, capture_output=True)
    total = host_cpu + adb_cpu
    return {
        "phones": phones,
        "wall_s": round(wall, 1),
        "edgekit_cpu_s": round(host_cpu, 2),
        "adb_servers_cpu_s": round(adb_cpu, 2),
        "host_cpu_s_per_phone": round(total / phones, 2),
        "host_core_share_per_phone": round(total / phones / wall, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phones", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--conversations", type=int, default=2)
    parser.add_argument("--turn-s", type=float, default=1.0)
    parser.add_argument("--artifact", type=Path, help="[default: the tiny example model, converted here]")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgekit-lab-"))
    try:
        artifact = args.artifact
        if artifact is None:
            from edgekit.convert import ConvertConfig, convert
            from edgekit.convert.example import RANDOM_WEIGHTS_MIN_AGREEMENT, write_example_model

            model = write_example_model(work / "tiny")
            config = ConvertConfig(output=work / "tiny.litertlm", min_agreement=RANDOM_WEIGHTS_MIN_AGREEMENT)
            artifact = convert(model, config).artifact.path
        for n in args.phones:
            figures = run(n, artifact, work, args.conversations, args.turn_s)
            print(
                f"{n} phone(s): wall {figures['wall_s']} s, host CPU {figures['edgekit_cpu_s']} s edgekit + "
                f"{figures['adb_servers_cpu_s']} s adb servers = {figures['host_cpu_s_per_phone']} s per phone "
                f"({figures['host_core_share_per_phone']:.1%} of one core per phone)  {json.dumps(figures)}",
                flush=True,
            )
        print(f"reproduce: {shlex.join([sys.executable, *sys.argv])}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
