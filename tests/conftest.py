"""Shared fixtures: tiny models are built here (random weights), never downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit.convert import ConvertConfig, ConvertResult, convert
from edgekit.convert.example import RANDOM_WEIGHTS_MIN_AGREEMENT
from edgekit.device.direct import DirectAdbDevice
from edgekit.testing.plugin import EmulatedDevice

REPO = Path(__file__).resolve().parent.parent
CHAT25 = REPO / "android_harness" / "workloads" / "chat-25.jsonl"

# Real-phone tests are collected only when a phone and its runner are named.
if not (os.environ.get("EDGEKIT_TEST_DEVICE") and os.environ.get("EDGEKIT_TEST_RUNNER")):
    collect_ignore_glob = ["device/*"]


def pytest_configure(config: pytest.Config) -> None:
    """Logs and caches go to a per-run temp folder, never the user's."""
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="edgekit-test-cache-")


@pytest.fixture(scope="session")
def int4_result(tiny_gemma3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConvertResult]:
    """The tiny example model converted to INT4 .litertlm once per session (with fidelity check)."""
    out = tmp_path_factory.mktemp("int4") / "tiny.litertlm"
    yield convert(tiny_gemma3_dir, ConvertConfig(output=out, min_agreement=RANDOM_WEIGHTS_MIN_AGREEMENT))


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `python -m edgekit ARGS` in a fresh process with an isolated HOME and cache."""
    home = Path(os.environ.get("XDG_CACHE_HOME", "/tmp")) / "home"
    home.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k != "EDGEKIT_DEBUG"}
    full_env = {**base, "HOME": str(home), "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def small_workload(tmp_path: Path, n: int = 3, turns: list[list[str]] | None = None) -> Path:
    """chat-25's header with its first `n` conversations (or conversations of `turns`), as a workload file."""
    lines = CHAT25.read_text().splitlines()
    if turns is not None:
        body = [json.dumps({"id": f"c{i}", "turns": t}) for i, t in enumerate(turns)]
    else:
        body = lines[1 : n + 1]
    f = tmp_path / "workload.jsonl"
    f.write_text("\n".join([lines[0], *body]) + "\n")
    return f


@pytest.fixture
def device(emulated_device: EmulatedDevice) -> Iterator[DirectAdbDevice]:
    """The emulated phone over the direct transport (adb-shell), closed afterwards."""
    host, port = emulated_device.serial.rsplit(":", 1)
    d = DirectAdbDevice(host, int(port), connect_timeout_s=5, auth_timeout_s=2)
    yield d
    d.close()
