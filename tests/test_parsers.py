"""Parsers against the real output shapes in ../shared/captures/."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.device import parsers

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


def test_runner_stats() -> None:
    s = parsers.parse_litert_lm_stats(cap("litert_lm_main-multiturn-benchmark.txt"))
    assert s.answers == ("The three cities are Lyon, Osaka and Quito.", "Positive.")
    assert s.init_total_s == pytest.approx(0.46102)
    assert s.ttft_s == pytest.approx(0.22)
    assert [t.tokens for t in s.prefill] == [41, 19]
    assert s.prefill[0].duration_s == pytest.approx(0.182114)
    assert s.decode[0].tokens_per_s == pytest.approx(27.83)
    assert [t.tokens for t in s.decode] == [12, 3]


def test_sysfs_status() -> None:
    assert parsers.parse_sysfs_status("Discharging\n") == parsers.STATUS_DISCHARGING
    assert parsers.parse_sysfs_status("Not charging") == parsers.STATUS_NOT_CHARGING
    assert parsers.parse_sysfs_status("bogus") is None
