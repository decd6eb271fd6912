"""Runner probe analysis, chat-app flags and battery-bench exit codes, on text and data."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgekit._typed import from_data, to_json
from edgekit.bench.gauge import PowerSample
from edgekit.bench.result import EXIT_FAILED, EXIT_OK, EXIT_VOID, BenchResult, ConversationRecord
from edgekit.bench.run_folder import Event
from edgekit.bench.validity import ValidityFlag
from edgekit.errors import InputError
from edgekit.probe import TTFT_DEVICE_CLOCK, Protocol, RunnerProbe, chat_flags
from edgekit.runtimes.litert_lm import TTFT_RUNNER, analyse_probe
from edgekit.runtimes.litert_lm.runner_standin import write_runner_standin
from tests.conftest import require_tool
from tests.elf import EM_AARCH64, write_elf
from tests.typed_results import run_meta, schema1_result


def _standin_helpfull(tmp_path: Path, kind: str) -> tuple[int, str]:
    exe = write_runner_standin(tmp_path / kind, kind)
    proc = subprocess.run([str(exe), "--helpfull"], capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("kind", "protocol", "stream"),
    [("advanced", Protocol.MULTI_TURN, "stderr"), ("simple", Protocol.ONE_SHOT, "stdout")],
)
def test_protocol_is_chosen_from_the_flags(tmp_path: Path, kind: str, protocol: str, stream: str) -> None:
    rc, out = _standin_helpfull(tmp_path, kind)
    assert rc == 1  # absl exits 1 after --helpfull (absl/flags/internal/usage.cc HandleUsageFlags)
    # The file name says nothing: a one-shot binary named like the advanced one is still one-shot.
    probe = analyse_probe(
        binary="litert_lm_advanced_main", helpfull_rc=rc, helpfull_out=out, version_out="x\n", libraries=()
    )
    assert (probe.protocol, probe.benchmark_stream) == (protocol, stream)
    assert from_data(json.loads(to_json(probe)), RunnerProbe, "probe") == probe


def test_old_release_is_refused_in_one_line(tmp_path: Path) -> None:
    rc, out = _standin_helpfull(tmp_path, "old")
    with pytest.raises(InputError) as exc:
        analyse_probe(binary="litert_lm_main", helpfull_rc=rc, helpfull_out=out, version_out="", libraries=())
    message = str(exc.value)
    assert "\n" not in message and "litert_lm_main" in message and "--input_prompt_file" in message
    assert "litert_lm_advanced_main" in message  # what to download instead


def test_unknown_flag_and_missing_library_like_upstream(tmp_path: Path) -> None:
    simple = write_runner_standin(tmp_path / "simple", "simple")
    proc = subprocess.run([str(simple), "--multi_turns"], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (1, "ERROR: Unknown command line flag 'multi_turns'\n")
    needy = write_runner_standin(tmp_path / "needy", "advanced", needs=("libX.so",))
    proc = subprocess.run([str(needy), "--helpfull"], capture_output=True, text=True, timeout=60, env={"PATH": "/bin"})
    assert proc.returncode == 1
    with pytest.raises(InputError, match=r"library libX\.so not found"):
        analyse_probe(binary="needy", helpfull_rc=1, helpfull_out=proc.stderr, version_out="", libraries=())
    with pytest.raises(InputError, match=r"printed no absl flag list for --helpfull \(exit 126"):
        analyse_probe(
            binary="x", helpfull_rc=126, helpfull_out="sh: x: Permission denied", version_out="", libraries=()
        )


def _probe(flags: dict[str, str], protocol: str = Protocol.MULTI_TURN) -> RunnerProbe:
    return RunnerProbe(
        binary="b",
        flags=flags,
        protocol=protocol,
        benchmark_stream="stderr",
        streams_answers="async" not in flags,
        version=None,
        libraries=(),
    )


def test_chat_flags_pass_only_what_the_binary_defines() -> None:
    full = {
        "model_path": '""',
        "multi_turns": "false",
        "benchmark": "false",
        "async": "true",
        "max_output_tokens": "-1",
        "num_cpu_threads": "0",
        "boost_performance": "true",
    }
    chosen = chat_flags(_probe(full), backend="cpu", threads=4, max_num_tokens=None, max_output_tokens=64)
    assert chosen.flags == (
        "--backend=cpu",
        "--multi_turns",
        "--benchmark",
        "--async=false",
        "--max_output_tokens=64",
        "--boost_performance=false",
        "--num_cpu_threads=4",
    )
    assert chosen.ttft_source == TTFT_RUNNER
    # What --benchmark does upstream, said as it is: the engine's tasks in one thread, not the model.
    [benchmark] = [c for c in chosen.conditions if c.startswith("--benchmark")]
    assert "set SetSingleThreadedExecution, so the engine runs its tasks (prefill, decode) in one thread" in benchmark
    assert "the figures are not single-core" in benchmark and "single-threaded" not in benchmark
    bare = {"model_path": '""', "multi_turns": "false", "benchmark": "false", "boost_performance": '"auto"'}
    chosen = chat_flags(_probe(bare), backend="cpu", threads=2, max_num_tokens=512, max_output_tokens=64)
    assert chosen.flags == ("--backend=cpu", "--multi_turns", "--benchmark")
    assert chosen.ttft_source == TTFT_DEVICE_CLOCK  # no --async: the answer streams
    said = " ".join(chosen.conditions)
    for lack in ("no --max_output_tokens", "no --num_cpu_threads", "no --max_num_tokens", "--boost_performance takes"):
        assert lack in said
    one = chat_flags(
        _probe({"model_path": '""', "input_prompt_file": '""'}, Protocol.ONE_SHOT),
        backend="gpu",
        threads=None,
        max_num_tokens=None,
        max_output_tokens=64,
    )
    assert one.flags == ("--backend=gpu",) and one.ttft_source == TTFT_RUNNER


def _result(*, complete: bool, validity: list[ValidityFlag], samples: list[PowerSample]) -> BenchResult:
    return dataclasses.replace(schema1_result(), complete=complete, validity=validity, samples=samples)


def _sample(current_raw: float | None, voltage_uv: float | None) -> PowerSample:
    return PowerSample(
        t_s=0.0,
        charge_counter_uah=None,
        current_raw=current_raw,
        voltage_uv=voltage_uv,
        level_pct=None,
        temperature_c=None,
        status=None,
    )


SAMPLE = _sample(100, 3_900_000)
EMPTY = _sample(None, None)
MISSING = ValidityFlag(code="counters_missing", message="m", voids=True)


@pytest.mark.parametrize(
    ("complete", "validity", "samples", "code"),
    [
        (True, [], [SAMPLE], EXIT_OK),
        (True, [ValidityFlag(code="thermal_changed", message="m", voids=False)], [SAMPLE], EXIT_OK),
        (True, [ValidityFlag(code="charging", message="m", voids=True)], [SAMPLE], EXIT_VOID),
        (True, [MISSING], [], EXIT_OK),  # no battery at all: a speed-only run
        (True, [MISSING], [EMPTY], EXIT_OK),
        (True, [MISSING], [SAMPLE], EXIT_VOID),  # some counters, not enough: void
        (False, [ValidityFlag(code="runner_failed", message="m", voids=True)], [SAMPLE], EXIT_FAILED),
        (False, [], [], EXIT_FAILED),
    ],
)
def test_exit_codes(complete: bool, validity: list[ValidityFlag], samples: list[PowerSample], code: int) -> None:
    assert _result(complete=complete, validity=validity, samples=samples).exit_code() == code


def test_standin_version_exits_0(tmp_path: Path) -> None:
    exe = write_runner_standin(tmp_path / "a", "advanced")
    proc = subprocess.run([sys.executable, str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "litert_lm_advanced_main\n")


def test_elf_needed_reads_dt_needed(tmp_path: Path) -> None:
    from edgekit.runners import elf_needed

    libs = ("libc++_shared.so", "liblog.so", "libLiteRtGpuAccelerator.so")
    elf = write_elf(tmp_path / "litert_lm_main", machine=EM_AARCH64, needed=libs)
    assert elf_needed(elf) == libs
    # The same list binutils reads.
    out = subprocess.run([require_tool("readelf"), "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    assert [line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line] == list(libs)
    assert elf_needed(write_elf(tmp_path / "needs-nothing", machine=EM_AARCH64)) == ()
    script = write_runner_standin(tmp_path / "s", "simple")
    assert elf_needed(script) is None


def _files(events: list[Event], **kw: Any) -> Any:
    from edgekit.bench.run_folder import RunFiles

    args: dict[str, Any] = {
        "meta": run_meta(),
        "events": events,
        "samples": [],
        "outputs": {},
        "errors": {},
        "crash_logs": {},
        "done": set(),
        "status": "done",
    }
    args.update(kw)
    return RunFiles(**args)


def test_runner_failures_name_the_cause() -> None:
    from edgekit.bench.assembly import runner_failures

    convs = [ConversationRecord(id=c, turns=n) for c, n in (("a", 3), ("b", 2), ("c", 2), ("d", 2))]
    events = [
        Event(t_s=1.0, name="turn_send", conversation="0001", turn=1),
        Event(t_s=1.5, name="turn_end", conversation="0001", turn=1),
        Event(t_s=2.0, name="conv_end", conversation="0001", turn=0),  # exited 0 after one answer
        Event(t_s=3.0, name="conv_end", conversation="0002", turn=137),  # killed by the low-memory killer
        Event(t_s=4.0, name="turn_timeout", conversation="0003", turn=2),
        Event(t_s=4.1, name="conv_end", conversation="0003", turn=137),
        Event(t_s=5.0, name="conv_end", conversation="0004", turn=139),
    ]
    crash = "F DEBUG   : Fatal signal 11 (SIGSEGV)\nF DEBUG   : Tombstone written to: /data/tombstones/tombstone_07\n"
    files = _files(events, errors={"0004": "I0000 x\nanswer\n"}, crash_logs={"0004": crash}, done={"0005"})
    flags = runner_failures(files, convs, 300)
    assert [f.code for f in flags] == ["runner_failed"] * 4 and all(f.voids for f in flags)
    messages = [f.message for f in flags]
    assert messages[0] == "conversation 0001 (a): the runner exited 0 but answered 1 of 3 turns"
    assert "exited 137, SIGKILL: killed, likely out of memory" in messages[1]
    assert "turn 2 took longer than the per-turn timeout (300 s): killed" in messages[2]
    assert "exited 139, SIGSEGV; stderr: I0000 x answer; tombstone: /data/tombstones/tombstone_07" in messages[3]


@pytest.mark.parametrize(("cache", "expected"), [(1024, 192), (4096, 256), (None, 192)])
def test_one_shot_history_fits_the_kv_cache(cache: int | None, expected: int) -> None:
    from edgekit.artifact import Artifact, SettingRecord
    from edgekit.bench.session import answer_cap_bytes
    from edgekit.bench.workload import load_workload

    chat25 = load_workload()  # 64 output tokens a turn, at most 5 turns
    manifest = schema1_result().artifact.manifest
    assert manifest is not None
    if cache is not None:
        settings = dataclasses.replace(manifest.settings, cache_length=SettingRecord(value=cache, source="caller"))
        manifest = dataclasses.replace(manifest, settings=settings)
    cap = answer_cap_bytes(chat25, Artifact(path=Path("m.litertlm"), manifest=None if cache is None else manifest))
    assert cap == expected
    # Four earlier answers at one token per byte still leave the reserve free.
    assert 4 * cap + 256 <= (cache or 1024)
