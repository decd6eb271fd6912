"""Re-record the llama.cpp captures in this folder from real binaries.

    python tests/captures/llama-cpp/record.py BIN_DIR MODEL.gguf

BIN_DIR is what scripts/build-llama-cpp prints (llama.cpp commit 0c1e570); MODEL is the
tiny q4_0 Gemma 3 GGUF (edgekit.testing.gguf_model.make_tiny_gemma3_gguf).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLAGS = ["-n", "16", "-t", "2", "-c", "1024", "--temp", "0", "--top-k", "1", "--no-warmup"]
FLAGS += ["--show-timings", "-lv", "3", "--simple-io"]


def main(bin_dir: Path, model: Path) -> None:
    cli = str(bin_dir / "llama-cli")
    env = {**os.environ, "LD_LIBRARY_PATH": str(bin_dir)}
    version = subprocess.run([cli, "--version"], env=env, capture_output=True, check=True)
    (HERE / "version.txt").write_bytes(version.stderr)
    help_ = subprocess.run([cli, "--help"], env=env, capture_output=True, check=True)
    (HERE / "help.txt").write_bytes(help_.stdout)

    turns = b"hello there\nwrite a poem\nlist three cities\n"
    run = subprocess.run([cli, "-m", str(model), *FLAGS], input=turns, env=env, capture_output=True, check=True)
    (HERE / "cli-3turns.stdout").write_bytes(run.stdout)
    (HERE / "cli-3turns.stderr").write_bytes(run.stderr)

    # Two turns with llama.cpp's log prefix and timestamps off.
    bare = [*FLAGS, "--no-log-prefix", "--no-log-timestamps"]
    run = subprocess.run(
        [cli, "-m", str(model), *bare], input=b"hello there\nwrite a poem\n", env=env, capture_output=True, check=True
    )
    (HERE / "cli-noprefix.stderr").write_bytes(run.stderr)

    # An empty line, a line ending in "/", then a turn longer than the context (refused).
    edge = b"hello there\n\nhi there/\n" + b"word " * 300 + b"\n"
    run = subprocess.run(
        [cli, "-m", str(model), *FLAGS, "-c", "256"], input=edge, env=env, capture_output=True, check=True
    )
    (HERE / "cli-edge.stdout").write_bytes(run.stdout)
    (HERE / "cli-edge.stderr").write_bytes(run.stderr)

    # One turn with a large -n, SIGKILLed once some answer bytes are on stdout.
    out_path, err_path = HERE / "cli-killed.stdout", HERE / "cli-killed.stderr"
    kill_flags = [*FLAGS, "-n", "100000", "-c", "4096", "-t", "1"]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [cli, "-m", str(model), *kill_flags], stdin=subprocess.PIPE, stdout=out, stderr=err, env=env
        )
        assert proc.stdin is not None
        while b"\n> " not in out_path.read_bytes():
            time.sleep(0.01)
        prompt_end = len(out_path.read_bytes())
        proc.stdin.write(b"hello there\n")
        proc.stdin.flush()
        while len(out_path.read_bytes()) < prompt_end + 40:
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
