"""CLI surface: --version, --help, and the message a core-only install gives."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

import edgekit
from edgekit import cli
from edgekit.convert import checkpoint
from tests.conftest import run_cli


def test_version_lists_edgekit_and_key_dependencies() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0] == f"edgekit {edgekit.__version__}"
    names = [line.split()[0] for line in lines]
    for dist in ("litert-torch", "litert-lm-api", "litert-lm-builder", "torch", "transformers", "tensorflow-cpu"):
        assert dist in names
    assert f"litert-torch {importlib.metadata.version('litert-torch')}" in lines  # what is installed


def test_help_teaches_the_cache_trade_off() -> None:
    proc = run_cli("convert", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "109/79/53 tok/s at 1024/2048/4096" in text
    assert "--min-agreement" in text and "--no-verify" in text


def test_convert_without_the_convert_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(checkpoint, "_missing", lambda module: module == "torch")
    (tmp_path / "m").mkdir()
    code = cli.main(["convert", str(tmp_path / "m"), "-o", str(tmp_path / "o.litertlm")])
    err = capsys.readouterr().err
    assert code == 3
    assert err.strip() == (
        "edgekit: error: edgekit convert needs torch: install edgekit[convert] "
        "(pip install 'edgekit[convert]', after pip install torch==2.13.0)"
    )
    assert not (tmp_path / "o.litertlm").exists()


def test_json_output_is_strict_json_whatever_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.commands.output import Output

    Output(json=True).data({"gap": float("nan"), "rows": [1.5, float("inf"), {"x": -float("inf")}], "n": 3})
    out = capsys.readouterr().out
    assert json.loads(out, parse_constant=lambda c: pytest.fail(f"bare {c} in --json")) == {
        "gap": None,
        "rows": [1.5, None, {"x": None}],
        "n": 3,
    }


def test_the_cli_quiets_litert_lm_logs_and_the_library_leaves_them_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading

    import litert_lm

    from edgekit import engine
    from edgekit.engine import open_engine

    levels: list[object] = []
    monkeypatch.setattr(litert_lm, "set_min_log_severity", levels.append)

    class _Engine:  # no model loads: only whether open_engine touches the log level matters
        def __init__(self, *_args: object, **_kwargs: object) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(litert_lm, "Engine", _Engine)
    monkeypatch.setattr(engine, "_QUIET", threading.Event())
    with open_engine(tmp_path / "m.litertlm"):
        pass
    assert levels == []  # a library caller keeps LiteRT-LM's own default
    assert cli.main(["--version"]) == 0
    capsys.readouterr()
    assert levels == []  # a command that opens no engine does not import LiteRT-LM for it
    with open_engine(tmp_path / "m.litertlm"):
        pass
    assert levels == [litert_lm.LogSeverity.ERROR]  # under the CLI, engines log only errors
