"""Push throughput to the ADB device emulator: each edgekit transport vs `adb push`.

Pushes one file (256 MB by default) to an emulated phone on 127.0.0.1, in one run:

  adb push            the adb binary edgekit uses, through a private adb server
  AdbDevice.push      edgekit's default transport, through the same server
  DirectAdbDevice     adb-shell straight to the emulator (no server)
  loopback ceiling    a raw TCP copy of the same bytes over 127.0.0.1 (what any client could reach)

Each push is repeated (--repeat, default 3) and the best is kept; every pushed file is
checked by sha256 in the sandbox. Prints MB/s, the ratio to `adb push`, and the command.

    .venv/bin/python benchmarks/push_throughput.py [--mb 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from edgekit.device.adb import AdbDevice, adb_binary
from edgekit.device.direct import DirectAdbDevice, ensure_adb_key
from edgekit.testing.emulator import AdbDeviceEmulator


def loopback_mb_s(data: bytes) -> float:
    """Raw TCP throughput over 127.0.0.1 for `data`: sender sendall, receiver discards."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def sink() -> None:
        conn, _ = server.accept()
        with conn:
            while conn.recv(1 << 20):
                pass

    t = threading.Thread(target=sink)
    t.start()
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(data)
    t.join()
    server.close()
    return len(data) / 1e6 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgekit-push-bench-"))
    os.environ["ANDROID_USER_HOME"] = str(work / ".android")
    key = ensure_adb_key()
    data = os.urandom(args.mb * 1_000_000)
    blob = work / "blob.bin"
    blob.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    port = 15000 + os.getpid() % 1000
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(port), "HOME": str(work)}
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(port)
    adb = adb_binary()
    subprocess.run([adb, "start-server"], env=env, check=True, capture_output=True)
    emu = AdbDeviceEmulator(work / "sandbox", trusted_keys=[key.with_name("adbkey.pub").read_bytes()]).start()
    results: dict[str, float] = {}
    try:
        subprocess.run([adb, "connect", emu.serial], env=env, check=True, capture_output=True)
        time.sleep(0.5)

        def timed(name: str, push: object) -> None:
            best = 0.0
            for i in range(args.repeat):
                remote = f"/data/local/tmp/{name}-{i}.bin"
                start = time.perf_counter()
                push(remote)  # type: ignore[operator]
                elapsed = time.perf_counter() - start
                landed = emu.map_device_path(remote)
                assert landed is not None and hashlib.sha256(landed.read_bytes()).hexdigest() == sha, name
                landed.unlink()
                best = max(best, len(data) / 1e6 / elapsed)
            results[name] = round(best, 1)
            print(f"{name:<18} {best:8.1f} MB/s", flush=True)

        timed(
            "adb push",
            lambda r: subprocess.run(
                [adb, "-s", emu.serial, "push", str(blob), r], env=env, check=True, capture_output=True
            ),
        )
        adb_device = AdbDevice(emu.serial)
        timed("AdbDevice", lambda r: adb_device.push(blob, r))
        host, p = emu.serial.rsplit(":", 1)
        direct = DirectAdbDevice(host, int(p))
        timed("DirectAdbDevice", lambda r: direct.push(blob, r))
        direct.close()
        results["loopback ceiling"] = round(loopback_mb_s(data), 1)
        print(f"{'loopback ceiling':<18} {results['loopback ceiling']:8.1f} MB/s")
    finally:
        emu.stop()
        subprocess.run([adb, "kill-server"], env=env, capture_output=True)
    ratios = {k: round(v / results["adb push"], 3) for k, v in results.items()}
    print(json.dumps({"mb": args.mb, "mb_per_s": results, "ratio_to_adb_push": ratios}, indent=2))
    print(f"default transport (AdbDevice) / adb push = {ratios['AdbDevice']} (target >= 0.9)")
    print(f"reproduce: {shlex.join([sys.executable, *sys.argv])}")


if __name__ == "__main__":
    main()
