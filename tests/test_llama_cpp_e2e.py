"""The real llama-cli (llama.cpp 0c1e570, host build) run on an emulated phone that reports
the host's ABI, through the device's shell, one process for a two-turn conversation."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from edgekit.device.direct import DirectAdbDevice
from edgekit.runners import elf_abi
from edgekit.runtimes.llama_cpp import parse_turn_timings, split_answers
from edgekit.testing.plugin import EmulatedDevice

pytestmark = pytest.mark.slow

REMOTE = "/data/local/tmp/llama"


def files_to_push(bin_dir: Path) -> list[Path]:
    """llama-cli, its impl libraries, the .so.0 names the binaries are linked against and
    the CPU backends (loaded at run time from the binary's folder)."""
    names = ["llama-cli", "libllama-cli-impl.so", "libllama-server-impl.so"]
    libs = sorted(bin_dir.glob("lib*.so.0")) + sorted(bin_dir.glob("libggml-cpu*.so"))
    return [bin_dir / name for name in names] + libs


def test_llama_cli_two_turns_on_a_host_abi_phone(
    host_abi_device: EmulatedDevice, llama_cpp_bin: Path, tiny_gguf: Path
) -> None:
    host, port = host_abi_device.serial.rsplit(":", 1)
    device = DirectAdbDevice(host, int(port), connect_timeout_s=5, auth_timeout_s=2)
    try:
        abi = elf_abi(llama_cpp_bin / "llama-cli")
        assert abi is not None and abi in device.facts().abis  # what deploy checks
        device.shell(["mkdir", "-p", REMOTE])
        for local in [*files_to_push(llama_cpp_bin), tiny_gguf]:
            device.push(local, f"{REMOTE}/{local.name}")
        argv = [f"{REMOTE}/llama-cli", "-m", f"{REMOTE}/{tiny_gguf.name}", "-n", "8", "-t", "2", "-c", "512"]
        argv += ["--temp", "0", "--top-k", "1", "--no-warmup", "--show-timings", "-lv", "3", "--simple-io"]
        turns = "printf 'hello there\\nwrite a poem\\n'"
        script = f"chmod 755 {REMOTE}/llama-cli && {turns} | LD_LIBRARY_PATH={REMOTE} {shlex.join(argv)}"
        result = device.script(script, timeout_s=120)
    finally:
        device.close()
    timings = parse_turn_timings(result.stderr)
    assert len(timings) == 2, result.stderr[-2000:]
    assert timings[0].prefill.tokens > 0 and all(t.decode.tokens <= 8 for t in timings)
    assert len(split_answers(result.stdout)) == 2
    assert result.stdout.endswith("\n\nExiting...\n")
