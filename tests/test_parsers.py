"""Parsers against the real output shapes in tests/captures/ (their sources: captures/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.device import parsers
from edgekit.runtimes import litert_lm

# Copies of the real-device output shapes (see captures/README.md for their sources).
CAPTURES = Path(__file__).resolve().parent / "captures"


def cap(name: str) -> str:
    return (CAPTURES / name).read_text()


def test_aosp_battery() -> None:
    b = parsers.parse_dumpsys_battery(cap("dumpsys-battery-aosp.txt"))
    assert b.level_pct == 83 and b.scale == 100
    assert b.status == parsers.STATUS_DISCHARGING
    assert b.charge_counter_uah == 3_912_000
    assert b.voltage_uv == 3_987_000
    assert b.temperature_c == 31.2
    assert b.plugged is False
    assert b.current_now_ua is None  # AOSP's dumpsys does not print it
    assert b.present is True and b.technology == "Li-ion"


def test_samsung_battery_with_extra_fields_and_event_log() -> None:
    b = parsers.parse_dumpsys_battery(cap("dumpsys-battery-samsung.txt"))
    assert b.status == parsers.STATUS_CHARGING and b.usb_powered is True and b.plugged is True
    assert b.current_now_ua == 1_100_000  # "current now" is mA on Samsung
    assert b.level_pct == 75  # not the event log's level:72/73
    assert b.voltage_uv == 4_156_000 and b.temperature_c == 35.7


def test_minimal_battery_unknown_fields_are_none() -> None:
    b = parsers.parse_dumpsys_battery(cap("dumpsys-battery-minimal.txt"))
    assert b.charge_counter_uah is None  # unknown, not 0
    assert b.scale is None and b.present is None and b.wireless_powered is None
    assert b.level_pct == 55 and b.usb_powered is True and b.plugged is True


def test_usb_full_battery() -> None:
    b = parsers.parse_dumpsys_battery(cap("dumpsys-battery-usb-full.txt"))
    assert b.status == parsers.STATUS_FULL and b.level_pct == 100 and b.charge_counter_uah == 3_270_000


def test_thermal_status() -> None:
    assert parsers.parse_thermal_status(cap("dumpsys-thermalservice.txt")) == 0
    assert parsers.parse_thermal_status("nothing here") is None


def test_getprop() -> None:
    props = parsers.parse_getprop(cap("getprop.txt"))
    assert props["ro.product.model"] == "Pixel 9 Pro"
    assert props["ro.soc.model"] == "Tensor G4"
    assert props["ro.product.cpu.abilist32"] == ""
    assert props["ro.build.version.sdk"] == "36"


def test_df() -> None:
    assert parsers.parse_df_available_bytes(cap("df-toybox.txt")) == 154_524_580 * 1024
    wrapped = "Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/block/very-long-name\n 100 50 50 50% /data\n"
    assert parsers.parse_df_available_bytes(wrapped) == 50 * 1024
    assert parsers.parse_df_available_bytes("df: /nope: No such file") is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("182.114ms", 0.182114), ("1.5s", 1.5), ("2m3.5s", 123.5), ("1h2m", 3720.0), ("250us", 0.00025), ("0s", 0.0)],
)
def test_absl_durations(text: str, seconds: float) -> None:
    assert parsers.parse_absl_duration(text) == pytest.approx(seconds)


def test_absl_duration_rejects_junk() -> None:
    with pytest.raises(ValueError):
        parsers.parse_absl_duration("12 parsecs")


def test_benchmark_info_on_stderr_with_absl_prefix() -> None:
    # litert_lm_lib.cc LogBenchmarkInfo: absl prefix on the first line only; io_types.cc format.
    info = litert_lm.parse_benchmark_info(cap("litert_lm_advanced_main-multiturn-sync.stderr.txt"))
    assert info is not None
    assert info.init_total_s == pytest.approx(0.46102)  # the "Init Total" phase
    assert "Init Total" not in info.init_phases_s and info.init_phases_s["Executor"] == pytest.approx(0.41287)
    assert info.ttft_s == pytest.approx(0.20)
    assert [t.tokens for t in info.prefill] == [41, 19]
    assert info.prefill[0].duration_s == pytest.approx(0.182114)
    assert [t.tokens for t in info.decode] == [12, 3]
    assert info.decode[1].duration_s == pytest.approx(0.10988)


def test_benchmark_info_one_shot_stdout_and_answer() -> None:
    text = cap("litert_lm_main-oneshot.stdout.txt")
    info = litert_lm.parse_benchmark_info(text)
    assert info is not None and len(info.prefill) == len(info.decode) == 1
    assert info.decode[0].duration_s == pytest.approx(1.0125) and info.decode[0].tokens == 9
    prompt = "List the cities named in: I flew from Lyon to Osaka."
    assert litert_lm.one_shot_answer(text, prompt) == "The cities are Lyon and Osaka."


def test_benchmark_info_older_total_line_and_none() -> None:
    old = "BenchmarkInfo:\n  Init Phases (2):\n    - Executor: 10.00 ms\n    Total init time: 12.50 ms\n"
    info = litert_lm.parse_benchmark_info(old)
    assert info is not None and info.init_total_s == pytest.approx(0.0125) and info.ttft_s is None
    assert litert_lm.parse_benchmark_info("Benchmark with multi-turns and async do not show results") is None


def test_absl_helpfull_wrapped_entries() -> None:
    text = (
        "litert_lm_advanced_main: Warning: SetProgramUsageMessage() never called\n\n"
        "  Flags from runtime/engine/shared_flags.cc:\n"
        "    --async (Run the LLM execution asynchronously.); default: true;\n"
        "    --num_cpu_threads (If greater than 0, the number of CPU threads to use for\n"
        "      the LLM execution with CPU backend.); default: 0;\n"
        '    --sampler_backend (Sampler backend); default: ""; currently: "cpu";\n'
    )
    flags = parsers.parse_absl_helpfull(text)
    assert set(flags) == {"async", "num_cpu_threads", "sampler_backend"}
    assert flags["num_cpu_threads"].default == "0" and flags["async"].default == "true"
    assert flags["sampler_backend"].default == '""'
    assert flags["async"].source == "runtime/engine/shared_flags.cc"
    loose = parsers.parse_absl_helpfull("  --multi_turns (x); default: false;\n--benchmark (y); default: false;\n")
    assert set(loose) == {"multi_turns", "benchmark"}


def test_runner_error_lines() -> None:
    assert parsers.parse_unknown_flag("ERROR: Unknown command line flag 'multi_turns'\n") == "multi_turns"
    bionic = 'CANNOT LINK EXECUTABLE "./litert_lm_main": library "libGemmaModelConstraintProvider.so" not found: '
    assert parsers.parse_cannot_link(bionic + "needed by main executable\n") == "libGemmaModelConstraintProvider.so"
    check = "F0000 00:00:1795646273.922955   15775 litert_lm_main.cc:231] Check failed: MainHelper(argc, argv) is OK"
    assert parsers.parse_check_failure(check + " (x)") == "Check failed: MainHelper(argc, argv) is OK (x)"
    assert parsers.parse_cannot_link("fine") is None and parsers.parse_unknown_flag("fine") is None


def test_sysfs_status() -> None:
    assert parsers.parse_sysfs_status("Discharging\n") == parsers.STATUS_DISCHARGING
    assert parsers.parse_sysfs_status("Not charging") == parsers.STATUS_NOT_CHARGING
    assert parsers.parse_sysfs_status("bogus") is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("-412000", -412000),
        ("80\n", 80),
        (" +7 ", 7),
        ("0", 0),
        (None, None),
        ("", None),
        ("unknown", None),
        ("1.5", None),
        ("1_000", None),
        ("٣", None),
    ],
)
def test_parse_int_takes_what_devices_print_and_nothing_else(text: str | None, value: int | None) -> None:
    # One integer parser for dumpsys fields, sysfs files and samples.csv columns.
    assert parsers.parse_int(text) == value
