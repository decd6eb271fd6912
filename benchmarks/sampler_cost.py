"""What the on-device sampler costs: CPU time per sample of `android_harness/sampler.sh`.

It runs the real sampler.sh with mksh (Android's shell; /bin/sh where mksh is missing)
against a sysfs stand-in shaped like a Pixel's `/sys/class/power_supply` (battery plus
seven supplies with `online` and `type`), and `dumpsys` stand-ins that print capture-shaped
`power` and `thermalservice` output (read every STATE_S seconds, one fork each). CPU time
is the sampler's and its children's (getrusage RUSAGE_CHILDREN), over wall time.

    .venv/bin/python benchmarks/sampler_cost.py [--seconds 20] [--sample-ms 250] [--state-s 5]

Prints CPU ms per sample and the sampler's share of one core; this is a host CPU, not a
phone's: compare runs on the same machine (e.g. before/after a change), not with phones.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent / "android_harness"
SUPPLIES = {  # name: (type, online) — a Pixel-like set; the battery has no `online`
    "usb": ("USB", "0"),
    "ac": ("Mains", "0"),
    "wireless": ("Wireless", "0"),
    "dc": ("Mains", "0"),
    "main-charger": ("Unknown", "0"),
    "gcpm": ("Unknown", "0"),
    "maxfg": ("Battery", "1"),
}
BATTERY = {
    "charge_counter": "3600000",
    "current_now": "-250000",
    "voltage_now": "3900000",
    "capacity": "80",
    "temp": "300",
    "status": "Discharging",
    "type": "Battery",
}
DUMPSYS = """#!/bin/sh
case "$1" in
  power) printf 'POWER MANAGER (dumpsys power)\\n\\nPower Manager State:\\n  mDirty=0x0\\n  mWakefulness=Awake\\n' ;;
  thermalservice) printf 'IsStatusOverride: false\\nThermal Status: 0\\nHAL Ready: true\\n' ;;
  *) exit 1 ;;
esac
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sample-ms", type=int, default=250)
    parser.add_argument("--state-s", type=float, default=5.0)
    parser.add_argument("--sampler", type=Path, help="Another sampler.sh to measure (e.g. an older revision's).")
    args = parser.parse_args()
    shell = shutil.which("mksh") or "/bin/sh"
    with tempfile.TemporaryDirectory(prefix="edgekit-sampler-") as tmp:
        root = Path(tmp)
        ps = root / "sys" / "class" / "power_supply"
        for name, (kind, online) in SUPPLIES.items():
            (ps / name).mkdir(parents=True)
            (ps / name / "type").write_text(kind + "\n")
            (ps / name / "online").write_text(online + "\n")
        (ps / "battery").mkdir()
        for key, value in BATTERY.items():
            (ps / "battery" / key).write_text(value + "\n")
        work = root / "work"
        run = work / "runs" / "r1"
        run.mkdir(parents=True)
        shutil.copytree(HARNESS, work / "harness", ignore=shutil.ignore_patterns("workloads"))
        bin_dir = root / "bin"
        bin_dir.mkdir()
        (bin_dir / "dumpsys").write_text(DUMPSYS)
        (bin_dir / "dumpsys").chmod(0o755)
        every = max(1, round(args.state_s * 1000 / args.sample_ms))
        (run / "run.env").write_text(
            f"SAMPLE_S={args.sample_ms / 1000:g}\nHARNESS=harness\nSTATE_EVERY={every}\nDEVICE_ROOT={root}\n"
        )
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        sampler = args.sampler.resolve() if args.sampler else work / "harness" / "sampler.sh"
        proc = subprocess.Popen([shell, str(sampler), str(run)], env=env)
        time.sleep(args.seconds)
        (run / "stop").touch()
        proc.wait(timeout=30)
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        lines = (run / "samples.csv").read_text().splitlines()
        print(f"shell: {shell}; {len(lines)} samples in {wall:.1f} s at {args.sample_ms} ms, state every {every}")
        print(f"last sample: {lines[-1]}")
        per = cpu * 1000 / len(lines)
        print(f"sampler CPU: {cpu * 1000:.0f} ms = {per:.2f} ms per sample = {cpu / wall:.2%} of one core")
        print(
            f"reproduce: .venv/bin/python benchmarks/sampler_cost.py --seconds {args.seconds:g} "
            f"--sample-ms {args.sample_ms} --state-s {args.state_s:g}"
        )


if __name__ == "__main__":
    main()
