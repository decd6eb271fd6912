"""edgekit.runtimes: LiteRT-LM's runners and llama.cpp's are two implementations of one
interface, and the code around them (probe, smoke, driver, assembly) asks only through it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from edgekit import runtimes
from edgekit.device.base import ShellResult
from edgekit.device.local import LocalDevice
from edgekit.errors import InputError
from edgekit.probe import Protocol, RunnerProbe, probe_runner
from edgekit.runtimes.base import Ask, Runtime
from edgekit.runtimes.litert_lm.runner_standin import write_runner_standin

CAPTURES = Path(__file__).parent / "captures"
REPO = Path(__file__).resolve().parents[1]


def _ask(answers: dict[str, tuple[int, str]]) -> Ask:
    """A fake `ask`: what the binary prints for each argument string."""

    def ask(args: str) -> ShellResult:
        rc, out = answers.get(args, (1, ""))
        return ShellResult(returncode=rc, stdout=out, stderr="")

    return ask


def test_every_runtime_implements_the_interface_and_owns_its_protocols() -> None:
    assert len({r.name for r in runtimes.RUNTIMES}) == len(runtimes.RUNTIMES)
    owned = [p for r in runtimes.RUNTIMES for p in r.protocols]
    assert sorted(owned) == sorted(Protocol)  # every protocol belongs to exactly one runtime
    for runtime in runtimes.RUNTIMES:
        assert isinstance(runtime, Runtime)
        assert not getattr(type(runtime), "__abstractmethods__", None)
        assert runtimes.named(runtime.name) is runtime
        for protocol in runtime.protocols:
            assert runtimes.for_protocol(protocol) is runtime
        attrs = ("key", "model_format", "model_file", "wanted", "runner_folder", "runner_file", "runner_help")
        for attr in (*attrs, "runner_name", "runner_binaries"):
            assert isinstance(getattr(runtime, attr), str) and getattr(runtime, attr)
        assert runtime.key.isidentifier() and type(runtime).__module__ == f"edgekit.runtimes.{runtime.key}"
    assert runtimes.DEFAULT in runtimes.RUNTIMES
    with pytest.raises(KeyError):
        runtimes.named("no such runtime")


NAMES_A_RUNTIME = re.compile(r"LiteRT|(?i:litert_lm)")
"""LiteRT (as spelled) or litert_lm in any case (LITERT_LM too). `.litertlm`, the artifact's
file name, and litert-torch, the converter, are every module's to say."""
MAY_NAME_IT = (
    "edgekit/runtimes/litert_lm/",  # the runtime's implementation: runners, bundle header, stand-ins
    "edgekit/runtimes/__init__.py",  # the registry: it imports each implementation to list it
    "edgekit/convert/",  # writes the runtime's bundles
    "edgekit/engine.py",  # runs them on this computer
)


def test_the_runtime_name_pattern() -> None:
    said = ("LiteRT-LM", "a LiteRT artifact", "litert_lm_main", "LITERT_LM", "edgekit.runtimes.litert_lm")
    assert all(NAMES_A_RUNTIME.search(text) for text in said)
    assert not any(NAMES_A_RUNTIME.search(text) for text in ("model.litertlm", "litert-torch", "litertlm_builder"))


def test_only_a_runtimes_implementation_names_it() -> None:
    # Issue #20: LiteRT and litert_lm are named only inside their runtime's implementation, in
    # edgekit/convert/ and in edgekit/engine.py; everything else asks edgekit.runtimes.
    assert all((REPO / allowed).exists() for allowed in MAY_NAME_IT)
    hits = []
    for path in sorted((REPO / "edgekit").rglob("*")):
        where = path.relative_to(REPO).as_posix()
        if "__pycache__" in path.parts or not path.is_file() or where.startswith(MAY_NAME_IT):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if NAMES_A_RUNTIME.search(line):
                hits.append(f"{where}:{n}: {line.strip()}")
    assert hits == []


@pytest.mark.parametrize("protocol", list(Protocol))
def test_driver_env_says_all_the_harness_needs(protocol: Protocol) -> None:
    env = runtimes.for_protocol(protocol).driver_env(protocol)
    assert all("\n" not in v for v in env.values())
    assert env.get("MODEL_OPT") or env.get("MODEL_PREFIX")  # how the model path is passed
    if protocol.per_conversation:
        assert env["PROMPT"]  # what the runner prints before it reads a turn
    else:
        assert env["PROMPT_FILE_PREFIX"]
    # driver.sh names no runtime: what it knows of one comes from run.env.
    driver = (REPO / "android_harness" / "driver.sh").read_text()
    for value in env.values():
        assert len(value) <= 2 or value not in driver


def test_each_runtime_recognises_only_its_own_binaries() -> None:
    llama_help = (CAPTURES / "llama-cpp" / "help.txt").read_text()
    llama_version = (CAPTURES / "llama-cpp" / "version.txt").read_text()
    litert, llama = runtimes.named("LiteRT-LM"), runtimes.named("llama.cpp")
    ask = _ask({"--help": (0, llama_help), "--helpfull": (0, llama_help), "--version": (0, llama_version)})
    assert litert.probe(ask, binary="llama-cli", libraries=()) is None
    probe = llama.probe(ask, binary="llama-cli", libraries=())
    assert probe is not None and probe.protocol is Protocol.LLAMA_CLI and probe.runtime == llama.name


def test_a_standin_is_probed_as_a_litert_lm_runner(tmp_path: Path) -> None:
    exe = write_runner_standin(tmp_path / "advanced", "advanced")

    def ask(args: str) -> ShellResult:
        proc = subprocess.run([str(exe), *args.split()], capture_output=True, text=True, timeout=60)
        return ShellResult(returncode=proc.returncode, stdout=proc.stdout + proc.stderr, stderr="")

    probe = runtimes.named("LiteRT-LM").probe(ask, binary="advanced", libraries=())
    assert probe is not None and probe.protocol is Protocol.MULTI_TURN and probe.runtime == "LiteRT-LM"
    assert runtimes.named("llama.cpp").probe(ask, binary="advanced", libraries=()) is None


def test_a_runner_that_is_neither_is_refused_with_the_same_message(tmp_path: Path) -> None:
    device = LocalDevice(root=tmp_path / "root")
    folder = tmp_path / "root" / "runners" / "x"
    folder.mkdir(parents=True)
    (folder / "neither").write_text('#!/bin/sh\necho "usage: neither [options]"\nexit 2\n')
    (folder / "neither").chmod(0o755)
    with pytest.raises(InputError) as exc:
        probe_runner(device, str(folder), "neither", ())
    # The message from before the runtimes were split (edgekit/probe.py at f7bc1dc), word for word.
    assert str(exc.value) == (
        "runner neither printed no absl flag list for --helpfull (exit 2: usage: neither [options]): it is not a "
        "LiteRT-LM runner edgekit knows; download litert_lm_advanced_main (multi-turn) or a current litert_lm_main "
        "(one-shot) for android_arm64 from LiteRT-LM's GitHub releases and pass its prebuilt/android_arm64/ folder "
        "as --runner"
    )
    assert not (folder / "probe.json").exists()


def test_a_probe_json_from_before_the_split_still_loads() -> None:
    from edgekit._typed import from_data, to_data

    old = {
        "binary": "litert_lm_advanced_main",
        "flags": {"multi_turns": "false"},
        "protocol": "multi_turn",
        "benchmark_stream": "stderr",
        "streams_answers": False,
        "version": None,
        "libraries": [],
    }
    probe = from_data(old, RunnerProbe, "probe")
    assert runtimes.for_probe(probe) is runtimes.named("LiteRT-LM") is runtimes.DEFAULT
    assert "runtime" not in to_data(probe)  # written back as it was read


@pytest.mark.parametrize(
    ("protocol", "argv", "text", "stdin"),
    [
        (Protocol.MULTI_TURN, ("--model_path=M", "-f"), "hi\n\n", True),
        (Protocol.ONE_SHOT, ("--model_path=M", "-f", "--input_prompt_file=P"), "hi", False),
        (Protocol.LLAMA_CLI, ("-m", "M", "-f"), "hi\n", True),
    ],
)
def test_a_turn_command_is_what_driver_sh_runs(
    protocol: Protocol, argv: tuple[str, ...], text: str, stdin: bool
) -> None:
    runtime = runtimes.for_protocol(protocol)
    probe = RunnerProbe(
        binary="b",
        flags={},
        protocol=protocol,
        benchmark_stream="stderr",
        streams_answers=True,
        version=None,
        libraries=(),
        runtime=runtime.name,
    )
    turn = runtime.turn_command(probe, model="M", flags=("-f",), prompt="hi", prompt_file="P")
    assert (turn.argv, turn.text, turn.stdin) == (argv, text, stdin)
    env = runtime.driver_env(protocol)
    # driver.sh builds the same argv from run.env: MODEL_OPT, MODEL_PREFIX + path, the flags, PROMPT_FILE_PREFIX + file.
    built = ([env["MODEL_OPT"]] if env.get("MODEL_OPT") else []) + [env.get("MODEL_PREFIX", "") + "M", "-f"]
    if not protocol.per_conversation:
        built.append(env["PROMPT_FILE_PREFIX"] + "P")
    assert tuple(built) == argv
