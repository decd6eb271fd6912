"""edgekit.runtimes.llama_cpp's parsers on output captured from the real llama.cpp 0c1e570 binaries
(tests/captures/llama-cpp/README.md says how each file was made)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edgekit.device.parsers import TurnStats
from edgekit.errors import InputError
from edgekit.runtimes.llama_cpp import (
    CLI_FLAGS,
    PROMPT,
    TIMINGS_LINE,
    LlamaBuild,
    TurnTimings,
    gguf_add_bos,
    gguf_chat_template,
    is_llama_cli_help,
    missing_cli_flags,
    parse_system_info,
    parse_turn_timings,
    parse_version,
    refusal,
    split_answers,
)

CAPTURES = Path(__file__).parent / "captures" / "llama-cpp"


def raw(name: str) -> bytes:
    return (CAPTURES / name).read_bytes()


def text(name: str) -> str:
    # The random model's answers hold invalid UTF-8: surrogateescape keeps every byte.
    return raw(name).decode("utf-8", errors="surrogateescape")


def as_bytes(answers: tuple[str, ...]) -> list[bytes]:
    return [a.encode("utf-8", errors="surrogateescape") for a in answers]


# The truth below is the bytes of the captures, cut by hand (independently of split_answers).
ANSWER_1 = b"localutrYS\xc9\x95\xef\xbf\xbdutrutrutrutrutrutrutrutrutr"
ANSWERS_3TURNS = [
    ANSWER_1,
    b"tr\xef\xbf\xbdplo\xef\xbf\xbdutralalalal\xef\xbf\xbd/////b",
    b"swswswononalalalalalalal\x1aal\x1aal",
]


def test_prompt_and_timings_line_on_the_capture() -> None:
    out = text("cli-3turns.stdout")
    assert out.count("\n" + PROMPT) == 4  # three turns and the one that reads EOF
    rates = [(m["prompt_tps"], m["generation_tps"]) for m in TIMINGS_LINE.finditer(out)]
    assert rates == [("142.7", "2785.0"), ("17629.8", "1618.3"), ("10539.2", "1487.9")]  # "%.1f" of 1487.95
    assert out.endswith("]\n\n> \n\nExiting...\n")


def test_parse_version() -> None:
    assert parse_version(text("version.txt")) == LlamaBuild(
        version="0.5.0-dev", build=1, commit="0c1e570", compiler="GNU 12.2.0", target="Linux x86_64"
    )


def test_parse_version_unknown_build_and_no_version() -> None:
    # cmake/build-info.cmake's defaults when the tree has no git
    built = parse_version("version: 0.5.0 (build 0, commit unknown)\nbuilt with unknown for unknown\n")
    assert built == LlamaBuild(version="0.5.0", build=None, commit=None, compiler=None, target=None)
    assert parse_version(text("help.txt")) is None
    assert parse_version("") is None


def test_help_of_llama_cli_has_every_flag() -> None:
    help_text = text("help.txt")
    assert help_text.startswith("----- common params -----\n")
    assert missing_cli_flags(help_text) == ()
    assert is_llama_cli_help(help_text)


def test_help_without_cli_flags_names_them() -> None:
    # llama-completion's help has no --show-timings (common/arg.cpp: set_examples CLI);
    # drop the option lines the way such a help would lack them.
    lines = text("help.txt").splitlines(keepends=True)
    dropped = "".join(line for line in lines if not line.startswith(("--show-timings", "-lv,", "--top-k")))
    assert missing_cli_flags(dropped) == ("--show-timings", "--top-k", "-lv")
    assert not is_llama_cli_help(dropped)
    assert missing_cli_flags("") == CLI_FLAGS


def test_help_flag_named_only_in_a_description_does_not_count() -> None:
    fake = "-x,    --example N                      like --simple-io, see also -lv\n"
    assert "--simple-io" in missing_cli_flags(fake)
    assert "-lv" in missing_cli_flags(fake)


def test_split_answers_three_turns() -> None:
    assert as_bytes(split_answers(text("cli-3turns.stdout"))) == ANSWERS_3TURNS


def test_split_answers_killed_mid_answer() -> None:
    out = raw("cli-killed.stdout")
    assert b"[ Prompt:" not in out
    assert as_bytes(split_answers(text("cli-killed.stdout"))) == [ANSWER_1 + b" ew ew"]


def test_split_answers_empty_line_and_refused_turn() -> None:
    answers = split_answers(text("cli-edge.stdout"))
    # The empty line's extra "> " is read as the start of the next answer (documented):
    # a runner never sends an empty line.
    assert as_bytes(answers) == [
        ANSWER_1,
        b"\n> trQterterterterdldldldldl>\xef\xbf\xbd cal c",
        b"Error: request (975 tokens) exceeds the available context size (256 tokens), try increasing it",
    ]
    assert [m["prompt_tps"] for m in TIMINGS_LINE.finditer(text("cli-edge.stdout"))][-1] == "0.0"


def test_refusal_reads_the_servers_context_error_and_nothing_else() -> None:
    answers = split_answers(text("cli-edge.stdout"))
    assert [refusal(a) for a in answers] == [
        None,
        None,
        "request (975 tokens) exceeds the available context size (256 tokens)",
    ]
    assert [refusal(a) for a in split_answers(text("cli-3turns.stdout"))] == [None, None, None]
    # An answer that only begins like the error is the model's.
    assert refusal("Error: request (975 tokens) exceeds the available context size (256 tokens). Also") is None


def test_refused_turns_void_the_run_and_say_what_to_raise() -> None:
    from edgekit.bench.assembly import refused_turn_flags
    from edgekit.bench.result import ConversationRecord
    from edgekit.bench.run_folder import RunFiles
    from tests.typed_results import run_meta, schema1_result

    convs = [ConversationRecord(id="fits", turns=3), ConversationRecord(id="long", turns=3)]

    def files(outputs: dict[str, str]) -> RunFiles:
        return RunFiles(
            meta=run_meta(), events=[], samples=[], outputs=outputs, errors={}, crash_logs={}, done=set(), status="done"
        )

    fine = files({"0001": text("cli-3turns.stdout"), "0002": text("cli-3turns.stdout")})
    assert refused_turn_flags(fine, convs) == []
    [flag] = refused_turn_flags(files({"0001": text("cli-3turns.stdout"), "0002": text("cli-edge.stdout")}), convs)
    assert flag.code == "context_exceeded" and flag.voids
    assert flag.message.startswith(
        "llama-cli refused 1 turn in 1 conversation for want of context (first conversation 0002 (long) turn 3: "
        "request (975 tokens) exceeds the available context size (256 tokens))"
    )
    assert "--max-num-tokens" in flag.message
    # A complete run with refused turns failed: the workload was not run (exit 7).
    result = schema1_result()
    assert result.complete and result.exit_code() != 7
    assert dataclasses.replace(result, validity=[*result.validity, flag]).exit_code() == 7


BANNER = "Loading model... \n\nbuild      : b1-0c1e570\n\navailable commands:\n  /exit or Ctrl+C     stop or exit\n\n\n"


def turn(answer: str, newline: str = "\n") -> str:
    return f"\n> {answer}{newline}\n[ Prompt: 10.0 t/s | Generation: 5.0 t/s ]\n"


def test_split_answers_keeps_lines_that_look_like_prompts() -> None:
    first = "> quoted\n\n> [ Prompt: not a rates line\nend"
    out = BANNER + turn(first) + turn("two") + "\n> \n\nExiting...\n"
    assert split_answers(out) == (first, "two")


def test_split_answers_empty_answer_and_answer_ending_in_newline() -> None:
    # cli-ui.h assistant_turn: no "\n" is added after an empty answer, nor after one
    # that ended in "\n" (so that one newline is lost).
    out = BANNER + turn("", newline="") + turn("line\n", newline="") + "\n> "
    assert split_answers(out) == ("", "line")


def test_split_answers_cut_off_and_no_answer_yet() -> None:
    assert split_answers(BANNER + turn("one") + "\n> half an ans") == ("one", "half an ans")
    assert split_answers(BANNER + turn("one") + "\n> ") == ("one",)  # waiting for stdin
    assert split_answers(BANNER + turn("one")) == ("one",)  # killed after the rates line
    assert split_answers(BANNER + "\n> only, killed") == ("only, killed",)


def test_split_answers_no_turns() -> None:
    assert split_answers(BANNER) == ()
    assert split_answers("") == ()
    assert split_answers("Loading model... \nError: server start failed\n") == ()


def stats(tokens: int, ms: float, tps: float) -> TurnStats:
    return TurnStats(tokens=tokens, duration_s=ms / 1000, tokens_per_s=tps)


def test_parse_turn_timings_three_turns() -> None:
    assert parse_turn_timings(text("cli-3turns.stderr")) == (
        TurnTimings(task=0, prefill=stats(13, 91.12, 142.66), decode=stats(16, 5.39, 2785.00)),
        TurnTimings(task=19, prefill=stats(36, 2.04, 17629.77), decode=stats(16, 9.27, 1618.30)),
        TurnTimings(task=38, prefill=stats(43, 4.08, 10539.22), decode=stats(16, 10.08, 1487.95)),
    )


def test_decode_rate_counts_steps_not_tokens() -> None:
    # server_slot_stats::n_gen_tps: the first token comes from the prefill, so the rate is
    # (n - 1) / t; the figure kept is llama.cpp's own.
    decode = parse_turn_timings(text("cli-3turns.stderr"))[0].decode
    assert decode.tokens_per_s == pytest.approx((decode.tokens - 1) / decode.duration_s, rel=0.01)


def test_parse_turn_timings_refused_and_killed_turns() -> None:
    edge = parse_turn_timings(text("cli-edge.stderr"))
    assert [(t.task, t.prefill.tokens, t.decode.tokens) for t in edge] == [(0, 13, 16), (19, 38, 16)]
    assert parse_turn_timings(text("cli-killed.stderr")) == ()
    assert parse_turn_timings("") == ()


def test_parse_turn_timings_without_log_prefix() -> None:
    bare = text("cli-noprefix.stderr")  # --no-log-prefix --no-log-timestamps
    assert "\nslot print_timing: id  0 | task 0 | prompt eval time" in bare
    assert not any(line[:1].isdigit() for line in bare.splitlines())  # no "0.00.123.456 I "
    assert parse_turn_timings(bare) == (
        TurnTimings(task=0, prefill=stats(13, 5.04, 2579.37), decode=stats(16, 19.70, 761.42)),
        TurnTimings(task=19, prefill=stats(36, 8.76, 4109.12), decode=stats(16, 7.46, 2010.45)),
    )


def test_parse_turn_timings_with_one_line_lost() -> None:
    # task 19's eval line lost (the logger is asynchronous): that turn is left out, the others stay in order
    lines = text("cli-3turns.stderr").splitlines()
    partial = "\n".join(line for line in lines if not ("task 19 |" in line and "       eval time" in line))
    assert len(partial.splitlines()) == len(lines) - 1
    assert [t.task for t in parse_turn_timings(partial)] == [0, 38]


def test_parse_system_info() -> None:
    assert parse_system_info(text("cli-3turns.stderr")) is None  # trace level: -lv 4
    line = (
        "0.00.031.533 I cmn  common_param: system_info: n_threads = 2 (n_threads_batch = 2) / 2 | "
        "CPU : SSE3 = 1 | AVX2 = 1 | OPENMP = 1 | REPACK = 1 | \n"
    )
    assert parse_system_info("x\n" + line + "y\n") == (
        "n_threads = 2 (n_threads_batch = 2) / 2 | CPU : SSE3 = 1 | AVX2 = 1 | OPENMP = 1 | REPACK = 1 |"
    )


def write_gguf(path: Path, **metadata: object) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "gemma3")
    if "chat_template" in metadata:
        writer.add_chat_template(str(metadata["chat_template"]))
    if "add_bos" in metadata:
        writer.add_add_bos_token(bool(metadata["add_bos"]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_chat_template_and_add_bos(tmp_path: Path) -> None:
    template = "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['content'] }}{% endfor %}"
    with_both = write_gguf(tmp_path / "a.gguf", chat_template=template, add_bos=True)
    assert gguf_chat_template(with_both) == template
    assert gguf_add_bos(with_both) is True
    no_bos = write_gguf(tmp_path / "b.gguf", add_bos=False)
    assert gguf_add_bos(no_bos) is False
    assert gguf_chat_template(no_bos) is None
    bare = write_gguf(tmp_path / "c.gguf")
    assert gguf_add_bos(bare) is None


def test_gguf_readers_refuse_a_non_gguf(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all")
    with pytest.raises(InputError, match="not a GGUF file"):
        gguf_chat_template(junk)
    with pytest.raises(InputError, match="does not exist"):
        gguf_add_bos(tmp_path / "missing.gguf")
