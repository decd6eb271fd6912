"""The test session itself: offline, its system tools declared in one place, random order."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, require_tool, system_deps


def test_no_model_hub_is_reachable_from_the_session() -> None:
    # What a CLI run under test inherits: the hub library in offline mode, transformers told too.
    code = "import os, huggingface_hub.constants as c; print(c.is_offline_mode(), os.environ['TRANSFORMERS_OFFLINE'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True).stdout
    assert out.split() == ["True", "1"]


def test_a_missing_system_tool_fails_with_its_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match=r"`sudo apt-get install -y binutils`"):
        require_tool("readelf")


def test_bootstrap_installs_the_declared_system_tools() -> None:
    # scripts/bootstrap reads the same list: one place names them.
    assert set(system_deps()) == {"chromium", "dash", "mksh", "readelf", "cmake", "g++"}
    assert "tests/system-deps.txt" in (REPO / "scripts" / "bootstrap").read_text()


def test_the_suite_runs_in_random_order() -> None:
    def order(seed: int) -> list[str]:
        argv = [sys.executable, "-m", "pytest", "--co", "-q", f"--randomly-seed={seed}", "tests/test_parsers.py"]
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return [line for line in proc.stdout.splitlines() if "::" in line]

    first = order(1)
    assert len(first) > 5 and order(1) == first  # a seed replays an order (pytest-randomly prints it)
    assert order(2) != first and sorted(order(2)) == sorted(first)
