"""Every byte of every answer is kept by android_harness/driver.sh, under the phone shells we
know (issue 17 #12): answers ending in 2-, 3- and 4-byte UTF-8 characters, through the real
driver.sh, run by mksh (Android's sh) and dash, with a runner stand-in that streams canned
answers byte by byte (so a character is split across the driver's reads).

The run folder is written by `run_folder.prepare` on a LocalDevice rooted in tmp_path, as
edgekit writes it on a phone; the driver is started as `SHELL driver.sh RUN_DIR`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgekit.runtimes import litert_lm
from tests.conftest import harness_run, require_tool

SHELLS = ("mksh", "dash")
# The first three end in a character of another length: é (2 bytes), 語 (3), 😀 (4).
ANSWERS = ["Un café", "日本語", "ok 😀", "Fin."]
TURNS = ["First?", "Second?", "Third?", "Fourth?"]

# A runner stand-in with canned answers: multi-turn like litert_lm_advanced_main --multi_turns
# (litert_lm_lib.cc: the prompt, then the answer and a newline per stdin line), one-shot like
# litert_lm_main (litert_lm_main.cc: "input_prompt: " + the prompt file + "\n", the answer, a
# blank line, BenchmarkInfo). It writes the answer one byte at a time and logs each prompt
# it received (one JSON string per line) beside itself.
STANDIN = textwrap.dedent(
    """\
    import json, os, sys
    here = os.path.dirname(os.path.abspath(__file__))
    answers = json.load(open(os.path.join(here, "answers.json"), encoding="utf-8"))
    log = os.path.join(here, "prompts.log")
    out = sys.stdout.buffer
    PROMPT = b"Please enter the prompt (or press Enter to end): "

    def say(text):
        for byte in text.encode("utf-8"):
            out.write(bytes([byte]))
            out.flush()

    def logged(text):
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(text) + "\\n")
        with open(log, encoding="utf-8") as f:
            return sum(1 for _ in f) - 1

    prompt_file = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--input_prompt_file=")]
    if prompt_file:
        prompt = open(prompt_file[0], encoding="utf-8").read()
        n = logged(prompt)
        out.write(b"input_prompt: " + prompt.encode("utf-8") + b"\\n")
        say(answers[n])
        out.write(b"\\n\\nBenchmarkInfo:\\n  Init Phases (1):\\n")
        out.flush()
    else:
        n = 0
        while True:
            out.write(PROMPT)
            out.flush()
            line = sys.stdin.buffer.readline().decode("utf-8")
            if not line.rstrip("\\n"):
                break
            logged(line.rstrip("\\n"))
            say(answers[n] + "\\n")
            n += 1
    """
)


def _run(tmp_path: Path, shell: str, protocol: str, cap_bytes: int) -> tuple[Path, Path]:
    """Run one conversation (TURNS) through driver.sh under `shell`; (run dir, runner dir)."""
    run_dir, runner_dir = harness_run(
        tmp_path, f"#!{sys.executable}\n" + STANDIN, protocol=protocol, turns=[TURNS], answer_cap_bytes=cap_bytes
    )
    (runner_dir / "answers.json").write_text(json.dumps(ANSWERS), encoding="utf-8")
    root = run_dir.parents[1]
    driver = subprocess.run(
        [require_tool(shell), str(root / "harness" / "driver.sh"), str(run_dir)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
    )
    assert driver.returncode == 0, driver.stderr.decode(errors="replace")
    assert (run_dir / "status").read_text() == "done\n"
    assert (run_dir / "done" / "0001").exists()
    return run_dir, runner_dir


def _prompts(runner_dir: Path) -> list[str]:
    return [json.loads(line) for line in (runner_dir / "prompts.log").read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("shell", SHELLS)
def test_multi_turn_keeps_every_byte_of_every_answer(tmp_path: Path, shell: str) -> None:
    run_dir, runner_dir = _run(tmp_path, shell, "multi_turn", 600)
    # The driver keeps the runner's stdout whole, prompts included (the host splits the answers
    # at them, assembly.turn_answer): every answer and its newline after its prompt, byte for
    # byte, and the last prompt the runner printed before its empty line ended it.
    prompt = litert_lm.MULTI_TURN_PROMPT
    assert (run_dir / "out" / "0001.txt").read_bytes() == ("".join(prompt + a + "\n" for a in ANSWERS) + prompt).encode(
        "utf-8"
    )
    assert _prompts(runner_dir) == TURNS


@pytest.mark.parametrize("shell", SHELLS)
def test_one_shot_keeps_every_answer_whole_in_the_next_turns_history(tmp_path: Path, shell: str) -> None:
    run_dir, runner_dir = _run(tmp_path, shell, "one_shot", 600)
    for k, answer in enumerate(ANSWERS, 1):
        stdout = (run_dir / "out" / f"0001.{k}.txt").read_bytes().decode("utf-8")
        prompt = _prompts(runner_dir)[k - 1]
        assert litert_lm.one_shot_answer(stdout, prompt) == answer
    # What the runner was given: each earlier answer whole, its last character included.
    assert _prompts(runner_dir) == [
        "First?",
        "User: First?\nAssistant: Un café\nUser: Second?",
        "User: First?\nAssistant: Un café\nUser: Second?\nAssistant: 日本語\nUser: Third?",
        "User: First?\nAssistant: Un café\nUser: Second?\nAssistant: 日本語\nUser: Third?\nAssistant: ok 😀\n"
        "User: Fourth?",
    ]


@pytest.mark.parametrize("shell", SHELLS)
def test_one_shot_history_cut_drops_only_a_character_the_cut_split(tmp_path: Path, shell: str) -> None:
    cap = 7  # "Un café" is 8 bytes, "日本語" 9, "ok 😀" exactly 7
    _, runner_dir = _run(tmp_path, shell, "one_shot", cap)
    # The truth, by Python's decoder: the first `cap` bytes, a character cut at the end dropped.
    kept = [a.encode("utf-8")[:cap].decode("utf-8", "ignore") for a in ANSWERS]
    assert kept == ["Un caf", "日本", "ok 😀", "Fin."]
    history = "".join(f"User: {t}\nAssistant: {a}\n" for t, a in zip(TURNS[:3], kept[:3], strict=True))
    assert _prompts(runner_dir)[3] == history + "User: Fourth?"
