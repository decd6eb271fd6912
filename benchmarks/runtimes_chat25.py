"""chat-25 on one emulated phone: .litertlm files on LiteRT-LM and .gguf files on llama.cpp, one campaign.

Starts edgekit's ADB device emulator on 127.0.0.1 reporting this computer's ABI, deploys each
.litertlm with the LiteRT-LM runner stand-in (edgekit.runtimes.litert_lm.runner_standin: this
computer's LiteRT-LM engine behind the multi-turn runner's protocol) and each .gguf with the
real llama-cli of a llama.cpp build folder, then runs one `edgekit battery-bench A B …`
campaign of the shipped chat-25 workload (in the order given) and prints, per artifact: chat-25's
wall time, output tokens, decode and prefill tok/s, time to first token, and the energy
per output token and battery per 25 conversations. The speeds are this computer's CPU's;
the battery and energy are SIMULATED (the emulator's battery model), labelled so.

    .venv/bin/python benchmarks/runtimes_chat25.py A.litertlm B.gguf [C.litertlm …] [--llama-bin DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgekit.bench.result import BenchResult
from edgekit.device.direct import ensure_adb_key
from edgekit.runtimes.litert_lm.runner_standin import write_runner_standin
from edgekit.testing.emulator import AdbDeviceEmulator

REPO = Path(__file__).resolve().parents[1]


def _edgekit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "edgekit", *args], env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 6):  # 6: a simulated battery figure void; the speeds stand
        raise SystemExit(f"edgekit {' '.join(args[:1])} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifacts", type=Path, nargs="+", help=".litertlm and .gguf files")
    parser.add_argument("--llama-bin", type=Path, help="llama.cpp's bin/ [default: scripts/build-llama-cpp's]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline-s", type=float, default=10.0)
    args = parser.parse_args()
    llama_bin = args.llama_bin
    if llama_bin is None and any(a.suffix == ".gguf" for a in args.artifacts):
        built = subprocess.run([str(REPO / "scripts" / "build-llama-cpp")], capture_output=True, text=True, check=True)
        llama_bin = Path(built.stdout.split()[-1])
    work = Path(tempfile.mkdtemp(prefix="edgekit-rt-chat25-"))
    key = ensure_adb_key(work / "android" / "adbkey")
    env = {**os.environ, "ANDROID_USER_HOME": str(key.parent), "XDG_CACHE_HOME": str(work / "cache")}
    standin = write_runner_standin(work / "litert_lm_advanced_main", "advanced")
    emulator = AdbDeviceEmulator(work / "phone", trusted_keys=[key.with_name("adbkey.pub").read_bytes()], host_abi=True)
    emulator.start()
    try:
        phone = ["--transport", "direct", "--device", emulator.serial]
        for artifact in args.artifacts:
            runner = llama_bin if artifact.suffix == ".gguf" else standin
            _edgekit(env, "deploy", *phone, "--no-smoke", "--runner", str(runner), str(artifact))
        out = work / "campaign"
        bench = ["battery-bench", *phone, "--threads", str(args.threads), "--baseline-s", f"{args.baseline_s:g}"]
        started = time.perf_counter()
        _edgekit(env, *bench, "--no-cooldown", "-o", str(out), *map(str, args.artifacts))
        wall = time.perf_counter() - started
    finally:
        emulator.stop()
    record = json.loads((out / "campaign.json").read_text())
    print(f"chat-25 on an emulated phone (this computer's CPU; battery SIMULATED), campaign wall {wall:.0f} s:")
    print(
        "| artifact | runtime | chat-25 s | output tokens | decode tok/s | prefill tok/s | TTFT median s "
        "| mJ/output token (simulated) | % battery / 25 conv. (simulated) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for cell in record["cells"]:
        r = BenchResult.load(out / cell["result"])
        s = r.summary

        def f(x: float | None, spec: str) -> str:
            return "—" if x is None else format(x, spec)

        print(
            f"| {r.artifact.name} | {r.runner.runtime} | {f(s.duration_s, '.0f')} | {s.output_tokens} "
            f"| {f(s.decode_tokens_per_s, '.1f')} | {f(s.prefill_tokens_per_s, '.0f')} | {f(s.ttft_s_median, '.3f')} "
            f"| {f(s.mj_per_output_token, '.1f')} | {f(s.battery_pct_per_25_conversations, '.3f')} |"
        )
        for flag in r.validity:
            print(f"    {'VOID' if flag.voids else 'flag'} {r.artifact.name}: [{flag.code}] {flag.message[:160]}")
    print("command:", shlex.join([".venv/bin/python", "benchmarks/runtimes_chat25.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
