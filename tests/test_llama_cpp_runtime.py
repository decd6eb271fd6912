"""A GGUF deployed and benched on llama.cpp's real llama-cli, on an emulated phone.

The binaries are llama.cpp's own (commit 0c1e570, built from the llama-cpp-python 0.3.36
sdist by scripts/build-llama-cpp, as they are); the emulated phone reports this computer's
ABI and runs them as it runs any program; the GGUF is a tiny random Gemma 3 made by
llama.cpp's convert_hf_to_gguf.py and llama-quantize (edgekit.testing.gguf_model); the last
test runs the real Gemma 3 270M, re-quantized to Q4_0 by that build's llama-quantize.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from edgekit.artifact import sha256_file
from edgekit.bench.result import BenchResult
from edgekit.convert import ConvertResult
from edgekit.testing.plugin import EmulatedDevice
from tests.conftest import run_cli, small_workload, wait_for

ROOT = "/data/local/tmp/edgekit"


def _env(adb_home: Path) -> dict[str, str]:
    return {"ANDROID_USER_HOME": str(adb_home / ".android")}


def _deploy(dev: EmulatedDevice, adb_home: Path, runner: Path, *args: str) -> subprocess.CompletedProcess[str]:
    deploy = ["deploy", "--transport", "direct", "--device", dev.serial, "--runner", str(runner)]
    return run_cli(*deploy, *args, env=_env(adb_home))


def _bench(dev: EmulatedDevice, *extra: str) -> list[str]:
    return ["battery-bench", "--transport", "direct", "--device", dev.serial, "--baseline-s", "1", *extra]


def test_a_gguf_deploys_and_benches_on_the_real_llama_cli(
    host_abi_device: EmulatedDevice, llama_cpp_bin: Path, tiny_gguf: Path, tmp_path: Path, adb_home: Path
) -> None:
    deploy = _deploy(host_abi_device, adb_home, llama_cpp_bin, str(tiny_gguf), "--json")
    assert deploy.returncode == 0, deploy.stderr
    [done] = json.loads(deploy.stdout)
    assert done["probe"]["protocol"] == "llama_cli" and done["probe"]["runtime"] == "llama.cpp"
    assert done["probe"]["commit"] == "0c1e570" and "AVX2 = 1" in done["probe"]["build_options"]
    assert done["probe"]["binary"] == "llama-cli"  # found by what it does among the build's programs
    assert done["smoke"]["decode_tokens"] > 0
    assert host_abi_device.path(f"{ROOT}/models/{sha256_file(tiny_gguf)}/model.gguf").is_file()

    turns = [["Hello there.", "Say it again.", "And once more."], ["What is a phone?", "Why?"]]
    workload = small_workload(tmp_path, turns=turns)
    out = tmp_path / "r.json"
    host_abi_device.battery.reset_truth()
    bench = run_cli(
        *_bench(host_abi_device, "--workload", str(workload), "-o", str(out)), str(tiny_gguf), env=_env(adb_home)
    )
    assert bench.returncode in (0, 6), bench.stderr  # complete; the simulated battery may void a 1 s baseline
    # The simulated battery drew its busy current while llama-cli ran (it marks nothing itself).
    assert host_abi_device.battery.truth()["busy_s"] > 0
    result = BenchResult.load(out)
    assert result.complete and result.simulated
    assert result.runner.runtime == "llama.cpp" and result.runner.protocol == "llama_cli"
    assert result.runner.probe.commit == "0c1e570"  # type: ignore[union-attr]
    assert result.artifact.sha256 == sha256_file(tiny_gguf)
    assert len(result.turns) == 5
    for turn in result.turns:  # llama.cpp's own per-turn figures, every turn
        assert turn.prompt_tokens and turn.prompt_tokens > 0, turn
        assert turn.output_tokens and 0 < turn.output_tokens <= 64, turn
        assert turn.decode_tokens_per_s and turn.prefill_tokens_per_s, turn
        # The device clock ticks 10 ms: a tiny model's first byte may read 0.
        assert turn.ttft_s is not None and turn.ttft_s >= 0, turn
    assert "llama.cpp 0.5.0-dev, commit 0c1e570" in bench.stdout + bench.stderr


def test_a_llama_cli_that_dies_mid_run_fails_the_run_naming_the_signal(
    host_abi_device: EmulatedDevice, llama_cpp_bin: Path, tiny_gguf: Path, tmp_path: Path, adb_home: Path
) -> None:
    deployed = _deploy(host_abi_device, adb_home, llama_cpp_bin, "--no-smoke", str(tiny_gguf))
    assert deployed.returncode == 0, deployed.stderr
    turns = [["Hello there."] * 2 for _ in range(3)]
    args = _bench(
        host_abi_device, "--workload", str(small_workload(tmp_path, turns=turns)), "-o", str(tmp_path / "r.json")
    )
    base = {k: v for k, v in os.environ.items() if k != "EDGEKIT_DEBUG"}
    home = Path(os.environ.get("XDG_CACHE_HOME", "/tmp")) / "home"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", *args, str(tiny_gguf)],
        env={**base, "HOME": str(home), **_env(adb_home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = host_abi_device.path(f"{ROOT}/runs")
    [pid_file] = wait_for(lambda: list(runs.glob("*/runner.pid")), what="the first conversation's llama-cli")
    runner = int(wait_for(lambda: pid_file.read_text().split(), what="its pid")[0])
    # Mid-run: once the driver has sent it the first turn (its FIFOs are open on both sides).
    # A runner killed before its FIFOs are open is test_driver_runner_death's.
    events = pid_file.parent / "events.csv"
    wait_for(lambda: events.is_file() and ",turn_send," in events.read_text(), what="its first turn")
    os.kill(runner, signal.SIGSEGV)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 7, err
    assert "SIGSEGV" in _out + err


def test_a_litertlm_and_a_gguf_on_one_phone_make_one_page(
    host_abi_device: EmulatedDevice,
    llama_cpp_bin: Path,
    tiny_gguf: Path,
    int4_result: ConvertResult,
    tmp_path: Path,
    adb_home: Path,
) -> None:
    litert = int4_result.artifact.path
    # Each runtime's runner once; the campaign then finds each its own (the last of its runtime).
    assert _deploy(host_abi_device, adb_home, host_abi_device.runner, "--no-smoke", str(litert)).returncode == 0
    assert _deploy(host_abi_device, adb_home, llama_cpp_bin, "--no-smoke", str(tiny_gguf)).returncode == 0
    folder = tmp_path / "runtimes"
    workload = small_workload(tmp_path, turns=[["Hello there.", "Say it again."]])
    args = _bench(host_abi_device, "--workload", str(workload), "--no-cooldown", "-o", str(folder))
    proc = run_cli(*args, str(litert), str(tiny_gguf), env=_env(adb_home))
    assert proc.returncode in (0, 6), proc.stderr
    record = json.loads((folder / "campaign.json").read_text())
    cells = {c["artifact"]: BenchResult.load(folder / c["result"]) for c in record["cells"]}
    assert set(cells) == {litert.stem, tiny_gguf.stem}
    assert cells[litert.stem].runner.runtime == "LiteRT-LM" and cells[tiny_gguf.stem].runner.runtime == "llama.cpp"
    assert all(r.complete for r in cells.values())
    report = run_cli("report", str(folder))
    assert report.returncode == 0, report.stderr
    decode = report.stdout.split("### Decode (tok/s)\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert decode[0] == f"| device | {litert.stem} | {tiny_gguf.stem} | {tiny_gguf.stem} ÷ {litert.stem} |"
    assert "tok/s (this computer's CPU)" in decode[2]
    assert (folder / "report.html").is_file()


def test_the_real_gemma3_270m_as_q4_0_answers_every_turn_on_llama_cli(
    host_abi_device: EmulatedDevice, llama_cpp_bin: Path, tmp_path: Path, adb_home: Path
) -> None:
    from edgekit.convert.example import CHAT_TEMPLATE
    from edgekit.convert.gguf import assemble_gemma3_270m_gguf

    # The trained weights edgekit ships (Q4_K_M), re-quantized to Q4_0 by llama.cpp's own tool.
    q4_k_m = assemble_gemma3_270m_gguf(tmp_path / "gemma3-270m-q4_k_m.gguf")
    q4_0 = tmp_path / "gemma3-270m-q4_0.gguf"
    quantize = [str(llama_cpp_bin / "llama-quantize"), "--allow-requantize", str(q4_k_m), str(q4_0), "Q4_0", "2"]
    done = subprocess.run(quantize, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    q4_k_m.unlink()
    # That GGUF has no chat template: llama-cli alone would chat in ChatML, which Gemma does
    # not know (its answers were "<|im_end|>" lines); deploy gives it Gemma's turn format.
    deployed = _deploy(host_abi_device, adb_home, llama_cpp_bin, str(q4_0))
    assert deployed.returncode == 0, deployed.stderr
    assert "has no chat template" in deployed.stderr and "Gemma's turn format" in deployed.stderr, deployed.stderr
    template = host_abi_device.path(f"{ROOT}/models/{sha256_file(q4_0)}/chat_template.jinja")
    assert template.read_text() == CHAT_TEMPLATE
    out = tmp_path / "r.json"
    args = _bench(host_abi_device, "--runner", str(llama_cpp_bin), "--workload", str(small_workload(tmp_path, 2)))
    bench = run_cli(*args, "-o", str(out), str(q4_0), env=_env(adb_home), timeout=1800)
    assert bench.returncode in (0, 6), bench.stderr
    result = BenchResult.load(out)
    assert result.complete and result.runner.runtime == "llama.cpp"
    assert any("--chat-template-file" in f for f in result.runner.flags)
    bad = ("degenerate_output", "runner_failed", "runner_figures_missing")
    assert not [f for f in result.validity if f.code in bad]
    assert len(result.turns) == sum(c.turns for c in result.workload.conversations)
    for turn in result.turns:
        assert turn.prompt_tokens and turn.output_tokens and turn.decode_tokens_per_s and turn.prefill_tokens_per_s
        assert turn.degenerate is None, turn  # a real answer, not <pad> or a loop
