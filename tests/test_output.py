"""The commands' one output object: the exact lines it writes, on which stream, in --json mode or not."""

from __future__ import annotations

import json

import pytest

from edgekit.commands.output import Output


def test_the_marked_lines_go_to_stderr_on_one_line_and_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    output = Output()
    long = "x" * 300
    output.ok("bundle")
    output.failed("R5CT1", f"device offline [{long}]")
    output.note("a [bracketed] word stays")
    output.note("the answer differs", label="warning")
    output.say("run r1 started on R5CT1; [not markup]")
    output.error("first line\nsecond line")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "✓ bundle",
        f"✗ R5CT1: device offline [{long}]",
        "note: a [bracketed] word stays",
        "warning: the answer differs",
        "run r1 started on R5CT1; [not markup]",
        "edgekit: error: first line second line",
    ]


def test_data_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    output = Output(json=True)
    assert output.json and not Output().json
    output.data({"b": 1, "a": [float("nan")]})
    output.echo("as it is [no markup]", nl=False)
    captured = capsys.readouterr()
    document, rest = captured.out.split("\n}\n")
    assert json.loads(document + "}") == {"a": [None], "b": 1}
    assert rest == "as it is [no markup]" and captured.err == ""


def test_stages_say_each_finished_stage(capsys: pytest.CaptureFixture[str]) -> None:
    stages = Output().stages()
    stages("load", "start")
    stages("load", "done")
    stages("export", "start")
    stages.stop()  # the conversion failed during export: no line for it
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("✓ load checkpoint ") and lines[0].endswith(" s")


def test_a_vocabulary_trim_has_its_own_stage_line(capsys: pytest.CaptureFixture[str]) -> None:
    stages = Output().stages()
    stages("vocab", "start")
    stages("vocab", "done")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("✓ trim vocabulary ") and lines[0].endswith(" s")
