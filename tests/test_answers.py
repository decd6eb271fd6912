"""Is the answer right? The degenerate-answer classifier, the run's verdict on it, the
first differing token, the .litertlm header check and the workload's UTF-8 check (pure)."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import pytest

from edgekit.answers import Degenerate, Difference, classify_answer, first_difference, mostly_degenerate
from edgekit.bench.assembly import degenerate_flags, turn_answer
from edgekit.bench.result import DEGENERATE_OUTPUT, TurnRecord
from edgekit.bench.run_folder import RunFiles
from edgekit.bench.workload import load_workload
from edgekit.errors import InputError
from edgekit.probe import Protocol
from edgekit.runtimes.litert_lm import MULTI_TURN_PROMPT
from edgekit.runtimes.litert_lm.bundle import read_header
from edgekit.runtimes.litert_lm.bundle_writer import write_bundle
from tests.typed_results import run_meta


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", Degenerate.EMPTY),
        ("  \n\n ", Degenerate.EMPTY),
        ("<pad>" * 32, Degenerate.SPECIAL_TOKENS),  # LiteRT-LM issue #3280
        ("<pad> <pad>\n<pad>", Degenerate.SPECIAL_TOKENS),
        ("<end_of_turn>", Degenerate.SPECIAL_TOKENS),
        ("\x1a\ufffdAA" + "<bos>" * 30, Degenerate.SPECIAL_TOKENS),  # the tiny random model, once
        ("Paris is the capital. <unused7><unused7><unused7><unused7>", Degenerate.SPECIAL_TOKENS),
        ("/" * 64, Degenerate.REPEATED),
        ("the " * 20, Degenerate.REPEATED),
        ("al" + "3" * 58, Degenerate.REPEATED),
        ("Hello! How can I help you today?", None),
        ("Use <b>bold</b> for emphasis.", None),  # markup is not a run of special tokens
        ("Paris, Lima, and Tokyo.\n1. Paris\n2. Lima\n3. Tokyo", None),
        ("ha ha ha, that is funny", None),
        ("Wait......... what?", None),  # a repeat that does not fill the answer
    ],
)
def test_classify_answer(text: str, kind: Degenerate | None) -> None:
    assert classify_answer(text) is kind


def test_mostly_degenerate_is_more_than_half() -> None:
    assert not mostly_degenerate(0, 0)
    assert not mostly_degenerate(1, 2)
    assert mostly_degenerate(2, 3)
    assert mostly_degenerate(7, 7)


def test_first_difference() -> None:
    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 2, 3], [1, 9, 3]) == Difference(position=1, a=2, b=9)
    assert first_difference([1, 2], [1, 2, 5]) == Difference(position=2, a=None, b=5)
    assert first_difference([0, 0], []) == Difference(position=0, a=0, b=None)


def _turn(n: int, degenerate: Any) -> TurnRecord:
    return TurnRecord(
        conversation="c",
        conversation_index=1,
        turn_index=n,
        prompt_tokens=5,
        output_tokens=16,
        ttft_s=0.1,
        prefill_tokens_per_s=50.0,
        decode_tokens_per_s=20.0,
        wall_s=1.0,
        t_start_s=float(n),
        t_end_s=n + 1.0,
        degenerate=degenerate,
    )


def test_a_run_of_mostly_degenerate_turns_is_flagged_once() -> None:
    from msgspec import UNSET

    pads = [_turn(i, Degenerate.SPECIAL_TOKENS) for i in range(1, 4)] + [_turn(4, None)]
    [flag] = degenerate_flags(pads)
    assert flag.code == DEGENERATE_OUTPUT and flag.voids
    assert flag.message.startswith("3 of 4 answers are degenerate (special tokens such as <pad>: 3)")
    assert "LiteRT-LM issue #3280" in flag.message
    # Half is not most; unread answers (UNSET, e.g. a result from before) do not count either way.
    assert degenerate_flags([_turn(1, Degenerate.EMPTY), _turn(2, None)]) == []
    assert degenerate_flags([_turn(1, Degenerate.EMPTY), _turn(2, UNSET), _turn(3, UNSET)]) != []
    assert degenerate_flags([_turn(1, UNSET)]) == []


def _files(**kw: Any) -> RunFiles:
    args: dict[str, Any] = {
        "meta": run_meta(),
        "events": [],
        "samples": [],
        "outputs": {},
        "errors": {},
        "crash_logs": {},
        "done": set(),
        "status": "done",
    }
    args.update(kw)
    return RunFiles(**args)


def test_turn_answers_multi_turn_between_prompts() -> None:
    # The runner's stdout as driver.sh keeps it: prompt, answer + newline, prompt, ...
    p = MULTI_TURN_PROMPT
    out = f"{p}Lima and Paris.\nBoth are capitals.\n{p}\n{p}<pad><pad>\n{p}"
    files = _files(outputs={"0001": out})
    assert turn_answer(files, "0001", 1, Protocol.MULTI_TURN) == "Lima and Paris.\nBoth are capitals.\n"
    assert turn_answer(files, "0001", 2, Protocol.MULTI_TURN) == "\n"
    assert turn_answer(files, "0001", 3, Protocol.MULTI_TURN) == "<pad><pad>\n"
    assert turn_answer(files, "0001", 5, Protocol.MULTI_TURN) is None
    # A file without prompts (a harness from before) cannot be split: not read.
    assert turn_answer(_files(outputs={"0001": "an answer\n"}), "0001", 1, Protocol.MULTI_TURN) is None


def test_turn_answers_one_shot_after_the_prompt_echo() -> None:
    # litert_lm_main.cc: "input_prompt: " + prompt + "\n", the answer, "\n\n", BenchmarkInfo.
    # driver.sh's prompt for turn 2: "User: t1", "Assistant: a1", "User: t2".
    second = "input_prompt: User: t1\nAssistant: a1\nUser: t2\n<pad><pad>\n\nBenchmarkInfo:\n  Init\n"
    files = _files(outputs={"0001.1": "input_prompt: t1\nline one\nline two\n\nBenchmarkInfo:\n", "0001.2": second})
    assert turn_answer(files, "0001", 1, Protocol.ONE_SHOT) == "line one\nline two\n\n"
    assert turn_answer(files, "0001", 2, Protocol.ONE_SHOT) == "<pad><pad>\n\n"
    assert turn_answer(files, "0001", 3, Protocol.ONE_SHOT) is None


def test_header_check_reads_awrite_bundle(tmp_path: Path) -> None:
    f = write_bundle(tmp_path / "m.litertlm", [(5, b"meta" * 10), (6, b"tok" * 100), (3, b"TFL3" + b"\1" * 5000)])
    header = read_header(f)
    assert header.version == (1, 7, 0)
    assert [(s.data_type, s.begin, s.end) for s in header.sections] == [
        (5, 16384, 16424),
        (6, 32768, 33068),
        (3, 49152, 54156),
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "0 bytes, shorter than the 32-byte header"),
        (b"hello, this is a text file\n", "it does not start with 'LITERTLM' (it starts with b'hello, t')"),
        (os.urandom(4096), "it does not start with 'LITERTLM'"),
        (b"LITERTLM" + struct.pack("<III", 1, 7, 0) + b"\0" * 4 + struct.pack("<Q", 10**9), "its header ends at byte"),
    ],
)
def test_header_check_refuses_what_no_runner_loads(tmp_path: Path, content: bytes, expected: str) -> None:
    f = tmp_path / "x.litertlm"
    f.write_bytes(content)
    with pytest.raises(InputError, match="is not a LiteRT-LM bundle the runner can load: ") as err:
        read_header(f)
    assert expected in str(err.value) and "edgekit convert" in str(err.value)


def test_header_check_refuses_other_major_truncated_and_no_model(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"format version 2\.7\.0; LiteRT-LM reads major version 1"):
        read_header(write_bundle(tmp_path / "v2.litertlm", [(3, b"x" * 100)], major=2))
    whole = write_bundle(tmp_path / "t.litertlm", [(6, b"tok"), (3, b"x" * 5000)])
    whole.write_bytes(whole.read_bytes()[:-1])
    with pytest.raises(InputError, match=r"section 1 \(TFLiteModel\) spans bytes 32768-37768, outside the file's"):
        read_header(whole)
    with pytest.raises(InputError, match=r"it has no TFLiteModel section \(1 sections\)"):
        read_header(write_bundle(tmp_path / "n.litertlm", [(6, b"tok")]))
    corrupt = bytearray(write_bundle(tmp_path / "c.litertlm", [(3, b"x" * 10)]).read_bytes())
    corrupt[32:36] = struct.pack("<I", 10**6)  # the flatbuffer root points outside the header
    (tmp_path / "c.litertlm").write_bytes(bytes(corrupt))
    with pytest.raises(InputError, match=r"its header is corrupt \(offset 1000000 is outside the header\)"):
        read_header(tmp_path / "c.litertlm")


def test_workload_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    f = tmp_path / "w.jsonl"
    content = b'{"workload": "w", "version": 1}\n{"id": "a", "turns": ["caf\xe9"]}\n'  # Latin-1 é
    f.write_bytes(content)
    with pytest.raises(InputError) as err:
        load_workload(f)
    offset = content.index(b"\xe9")
    assert str(err.value) == f"workload {f} is not UTF-8: byte {offset} (line 2) is 0xe9; save the file as UTF-8"
