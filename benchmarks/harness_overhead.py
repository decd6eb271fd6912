"""How much the battery-bench harness itself costs, and how close `--device local` is to raw LiteRT-LM.

1. On the emulated phone: CPU seconds of the harness (driver.sh + sampler.sh + the tools
   they start) ÷ CPU seconds of the workload (the runner processes), for the chat-25
   workload at the default 250 ms sampling. The whole run goes through `/usr/bin/time`, so
   every process it waited for is counted; each runner reports its own CPU time. Target < 1%.
2. On this computer: decode tokens/s of `battery-bench --device local` (chat-25) ÷ decode
   tokens/s of `litert_lm.Benchmark` for the same artifact, threads and output length, in
   the same run. Target >= 0.95.

The runners are timed by `/usr/bin/time` each (start-up and exit included); the harness is
everything else the whole run's `/usr/bin/time` counted.

    .venv/bin/python benchmarks/harness_overhead.py --artifact MODEL.litertlm [--threads 2]

Without --artifact, the tiny example model is built and converted first (its turns take
milliseconds, so the runner's Python start-up dominates: use a real-size artifact for the
figures in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from edgekit.artifact import Artifact
from edgekit.bench import run_folder
from edgekit.bench.assembly import artifact_meta, device_meta, workload_meta
from edgekit.bench.config import BenchConfig
from edgekit.bench.local_run import run_local
from edgekit.bench.result import BenchSettings, RunnerRecord
from edgekit.bench.workload import load_workload
from edgekit.deploy import DeployConfig, deploy
from edgekit.device.direct import DirectAdbDevice, ensure_adb_key
from edgekit.device.local import LocalDevice
from edgekit.probe import Backend, chat_flags
from edgekit.runtimes.litert_lm.runner_standin import write_runner_standin
from edgekit.testing.emulator import AdbDeviceEmulator


def harness_share(artifact: Path, work: Path, threads: int | None) -> dict[str, float]:
    os.environ["ANDROID_USER_HOME"] = str(work / ".android")
    key = ensure_adb_key()
    emu = AdbDeviceEmulator(work / "sandbox", trusted_keys=[key.with_name("adbkey.pub").read_bytes()]).start()
    cpu_log = work / "runner-cpu.txt"
    host, port = emu.serial.rsplit(":", 1)
    device = DirectAdbDevice(host, int(port))
    try:
        # Each runner process is timed from outside, start-up and exit included.
        standin = write_runner_standin(work / "standin")
        runner = work / "litert_lm_main"
        runner.write_text(
            f'#!/bin/sh\nexec /usr/bin/time -a -o {shlex.quote(str(cpu_log))} -f "%U %S" {standin} "$@"\n'
        )
        runner.chmod(0o755)
        deployed = deploy(device, artifact, DeployConfig(runner=runner, smoke=False))
        assert deployed.runner is not None
        workload = load_workload()
        paths = run_folder.run_paths(device, "overhead", deployed.harness.remote)
        probe = deployed.probe
        assert probe is not None
        chosen = chat_flags(
            probe,
            backend=Backend.CPU,
            threads=threads,
            max_num_tokens=None,
            max_output_tokens=workload.max_output_tokens,
        )
        flags = list(chosen.flags)
        run_folder.prepare(
            device,
            paths,
            runner=deployed.runner.remote,
            model=deployed.model.remote,
            workload=workload,
            flags=flags,
            protocol=probe.protocol,
            turn_timeout_s=300,
            answer_cap_words=workload.max_output_tokens * 3 // 4,
            answer_cap_bytes=workload.max_output_tokens * 4,
            sample_period_s=0.25,
            baseline_s=5,
            meta=run_folder.RunMeta(
                run_id="overhead",
                created="",
                device=device_meta(device, redact=False),
                artifact=artifact_meta(Artifact.load(artifact), deployed),
                workload=workload_meta(workload),
                runner=RunnerRecord(flags=tuple(flags), protocol=probe.protocol),
                settings=BenchSettings(sample_period_s=0.25, baseline_s=5.0, capacity_mah=None),
            ),
        )
        timing = f"{paths.run_dir}/time.txt"
        start = time.perf_counter()
        driver = shlex.quote(deployed.harness.remote + "/driver.sh")
        command = f"/usr/bin/time -f '%U %S' -o {shlex.quote(timing)} sh {driver} {shlex.quote(paths.run_dir)}"
        device.script(command, timeout_s=7200)
        wall = time.perf_counter() - start
        user, system = map(float, device.shell(["cat", timing]).stdout.split()[-2:])
    finally:
        device.close()
        emu.stop()
    total = user + system
    # /usr/bin/time adds "Command exited with non-zero status 1" for deploy's --helpfull probe.
    pairs = [line.split() for line in cpu_log.read_text().splitlines()]
    runners = sum(float(p[0]) + float(p[1]) for p in pairs if len(p) == 2)
    return {
        "wall_s": round(wall, 1),
        "total_cpu_s": round(total, 2),
        "runner_cpu_s": round(runners, 2),
        "harness_cpu_s": round(total - runners, 3),
        "harness_share": round((total - runners) / runners, 4),
    }


def local_vs_raw(artifact: Path, threads: int | None, work: Path) -> dict[str, float]:
    import litert_lm

    workload = load_workload()
    result = run_local(LocalDevice(work / "local"), artifact, BenchConfig(threads=threads))
    local_tps = result.summary.decode_tokens_per_s
    assert local_tps is not None, "the local run measured no decode speed"
    litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
    cache = work / "xnnpack"
    cache.mkdir(exist_ok=True)
    raw = litert_lm.Benchmark(
        model_path=str(artifact),
        backend=litert_lm.Backend.CPU(thread_count=threads),
        prefill_tokens=32,
        decode_tokens=workload.max_output_tokens,
        cache_dir=str(cache),
    ).run()
    raw_tps = raw.last_decode_tokens_per_second
    return {
        "local_decode_tok_s": round(local_tps, 1),
        "raw_decode_tok_s": round(raw_tps, 1),
        "ratio": round(local_tps / raw_tps, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgekit-overhead-"))
    artifact = args.artifact
    if artifact is None:
        from edgekit.convert import ConvertConfig, convert
        from edgekit.convert.example import RANDOM_WEIGHTS_MIN_AGREEMENT, write_example_model

        model = write_example_model(work / "tiny")
        artifact = convert(
            model, ConvertConfig(output=work / "tiny.litertlm", min_agreement=RANDOM_WEIGHTS_MIN_AGREEMENT)
        ).artifact.path
    share = harness_share(artifact, work, args.threads)
    print(f"harness CPU / workload CPU = {share['harness_share']:.2%} (target < 1%)  {json.dumps(share)}", flush=True)
    local = local_vs_raw(artifact, args.threads, work)
    print(f"--device local decode / raw litert_lm.Benchmark = {local['ratio']} (target >= 0.95)  {json.dumps(local)}")
    print(f"reproduce: {shlex.join([sys.executable, *sys.argv])}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
