"""How long `edgekit deploy` takes to stop after Ctrl-C in the middle of a big push.

Starts an emulated phone on 127.0.0.1 (and a private adb server for the adb transport),
runs `python -m edgekit deploy` of a big file (800 MB by default, a file without a
manifest: provenance unknown) in a subprocess, sends it a real SIGINT once the .part file
on the phone has grown past 100 MB, and times SIGINT -> exit. Checks each time that the
exit code is 130, that the file is still under its .part name and that deploys.log has no
entry for it. Prints seconds per transport (best and worst of --repeat) and the command.

    .venv/bin/python benchmarks/ctrl_c_deploy.py [--mb 800] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgekit.device.adb import adb_binary, ensure_server
from edgekit.device.direct import ensure_adb_key
from edgekit.runtimes.litert_lm.bundle_writer import TFLITE_MODEL, write_bundle
from edgekit.runtimes.litert_lm.runner_standin import write_runner_standin
from edgekit.testing.emulator import AdbDeviceEmulator

ROOT = "data/local/tmp/edgekit"


def one_stop(transport: str, emu: AdbDeviceEmulator, big: Path, runner: Path, env: dict[str, str]) -> float:
    """Seconds from SIGINT to the deploy's exit; raises if anything was left trusted."""
    models = emu.sandbox / ROOT / "models"
    argv = [sys.executable, "-m", "edgekit", "deploy", "--transport", transport, "--device", emu.serial]
    proc = subprocess.Popen([*argv, "--runner", str(runner), str(big)], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while True:
        parts = list(models.glob("*/model.litertlm.part")) if models.is_dir() else []
        if parts and parts[0].stat().st_size > 100e6:
            break
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"{transport}: the push never got under way")
        time.sleep(0.02)
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    took = time.perf_counter() - sent
    log = emu.sandbox / ROOT / "deploys.log"
    if proc.returncode != 130 or not parts[0].exists() or (log.exists() and parts[0].parent.name in log.read_text()):
        raise SystemExit(f"{transport}: exit {proc.returncode}, something left trusted: {err.strip()}")
    subprocess.run(["rm", "-rf", str(emu.sandbox / ROOT)], check=True)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=800)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgekit-ctrl-c-") as tmp:
        work = Path(tmp)
        home = work / "home"
        ensure_adb_key(home / ".android" / "adbkey")
        # A bundle deploy's header check accepts (one small TFLite section, laid out as
        # litert_lm_builder writes it), grown to --mb MiB: the runner stand-in never reads it.
        big = write_bundle(work / "big.litertlm", [(TFLITE_MODEL, b"TFL3" * 1024)])
        with big.open("r+b") as f:
            f.truncate(args.mb * 1024 * 1024)
        runner = write_runner_standin(work / "litert_lm_main")
        port = "39377"
        env = {**os.environ, "HOME": str(home), "ANDROID_USER_HOME": str(home / ".android")}
        env["ANDROID_ADB_SERVER_PORT"] = port
        os.environ.update(ANDROID_ADB_SERVER_PORT=port, ANDROID_USER_HOME=str(home / ".android"))
        server_env = {k: v for k, v in env.items() if k != "ANDROID_USER_HOME"}
        subprocess.run([adb_binary(), "start-server"], env=server_env, check=True, capture_output=True)
        key = (home / ".android" / "adbkey.pub").read_bytes()
        emu = AdbDeviceEmulator(work / "device", trusted_keys=[key]).start()
        try:
            ensure_server().connect(emu.serial, timeout=10)
            for transport in ("direct", "adb"):
                times = [one_stop(transport, emu, big, runner, env) for _ in range(args.repeat)]
                print(
                    f"{transport:6}  Ctrl-C -> exit: best {min(times):.2f} s, worst {max(times):.2f} s "
                    f"({args.repeat} runs, {args.mb} MB push cut at >100 MB; .part kept, nothing logged)"
                )
        finally:
            emu.stop()
            subprocess.run([adb_binary(), "kill-server"], env=server_env, capture_output=True)
    print("command:", shlex.join([sys.executable, *sys.argv]))


if __name__ == "__main__":
    main()
