"""The README's first command, `edgekit demo`, with the real Gemma 3 270M (its own file: the
longest test, ~8-15 min, so the parallel test workers can balance it against the rest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.artifact import Artifact
from tests.conftest import run_cli


@pytest.mark.slow
def test_demo_speaks_with_the_real_model(tmp_path: Path) -> None:
    """The README's first command: the real Gemma 3 270M, converted with the defaults, continues a prompt
    like PyTorch does, then chat-25 runs on an emulated phone over ADB with every battery figure simulated."""
    proc = run_cli("demo", "--workdir", str(tmp_path / "demo"), "--json", timeout=1500)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "gemma3-270m" and data["base_model"] is True and data["random_weights"] is False
    assert data["fidelity"]["passed"] is True
    engine, reference = data["continuation"]["litert_lm"], data["continuation"]["pytorch"]
    # A trained model continues with words (random weights give byte soup: this fails for them).
    for text in (engine, reference):
        words = text.split()
        assert len(words) >= 5, text
        assert "\ufffd" not in text, text
        assert sum(w.strip(".,;:!?'\"()").isalpha() for w in words) >= 0.7 * len(words), text
    bench = data["battery_bench"]
    assert bench["simulated"] is True and bench["exit_code"] == 0
    assert bench["summary"]["decode_tokens_per_s"] > 0
    assert bench["summary"]["battery_pct_per_25_conversations"] > 0
    result = json.loads(Path(bench["result"]).read_text())
    assert result["simulated"] is True and result["complete"] is True
    assert Path(bench["report"]).read_text().count("simulated") >= 1
    assert Artifact.load(Path(data["artifact"])).verify() == json.loads(Path(data["manifest"]).read_text())["sha256"]
