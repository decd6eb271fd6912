"""Pure parsers for what Android devices and the LiteRT-LM runner print.

Each takes text and returns a typed value; none touches a device. Every variant in
`shared/captures/` parses (see tests/test_parsers.py). A field a device does not print is
None, never 0. Units live in names.
"""

from __future__ import annotations

import dataclasses
import re

# dumpsys battery `status` / sysfs `status`
STATUS_CHARGING = 2
STATUS_DISCHARGING = 3
STATUS_NOT_CHARGING = 4
STATUS_FULL = 5
_SYSFS_STATUS = {
    "unknown": 1,
    "charging": STATUS_CHARGING,
    "discharging": STATUS_DISCHARGING,
    "not charging": STATUS_NOT_CHARGING,
    "full": STATUS_FULL,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatteryInfo:
    """`dumpsys battery`, parsed. None = the device did not print it."""

    level_pct: int | None = None
    scale: int | None = None
    status: int | None = None
    ac_powered: bool | None = None
    usb_powered: bool | None = None
    wireless_powered: bool | None = None
    dock_powered: bool | None = None
    charge_counter_uah: int | None = None
    voltage_uv: int | None = None
    temperature_c: float | None = None
    current_now_ua: int | None = None
    present: bool | None = None
    technology: str | None = None

    @property
    def plugged(self) -> bool | None:
        """True if any power source is connected; None if the device printed none."""
        sources = [self.ac_powered, self.usb_powered, self.wireless_powered, self.dock_powered]
        known = [s for s in sources if s is not None]
        return any(known) if known else None


def _fields(text: str) -> dict[str, str]:
    """`key: value` lines of the first section (indented), lower-cased keys."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("[") and out:  # a vendor's appended section (e.g. [EventLogBuffer])
            break
        key, sep, value = line.strip().partition(":")
        if sep and key and not key.startswith("["):
            out.setdefault(key.strip().lower(), value.strip())
    return out


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _bool(value: str | None) -> bool | None:
    return None if value is None else value.lower() == "true"


def parse_dumpsys_battery(text: str) -> BatteryInfo:
    """Parse `dumpsys battery` (AOSP, Samsung, minimal builds).

    Units converted: voltage mV -> µV, temperature 0.1 °C -> °C, Samsung's `current now`
    mA -> µA. `Charge counter` is already µAh.
    """
    f = _fields(text)
    voltage_mv = _int(f.get("voltage"))
    temp_dc = _int(f.get("temperature"))
    current_ma = _int(f.get("current now"))
    return BatteryInfo(
        level_pct=_int(f.get("level")),
        scale=_int(f.get("scale")),
        status=_int(f.get("status")),
        ac_powered=_bool(f.get("ac powered")),
        usb_powered=_bool(f.get("usb powered")),
        wireless_powered=_bool(f.get("wireless powered")),
        dock_powered=_bool(f.get("dock powered")),
        charge_counter_uah=_int(f.get("charge counter")),
        voltage_uv=None if voltage_mv is None else voltage_mv * 1000,
        temperature_c=None if temp_dc is None else temp_dc / 10,
        current_now_ua=None if current_ma is None else current_ma * 1000,
        present=_bool(f.get("present")),
        technology=f.get("technology"),
    )


def parse_sysfs_status(value: str) -> int | None:
    """sysfs power_supply `status` text ("Discharging") -> the dumpsys status number."""
    return _SYSFS_STATUS.get(value.strip().lower())


def parse_thermal_status(text: str) -> int | None:
    """`Thermal Status: N` (0 none .. 6 shutdown) from `dumpsys thermalservice`."""
    m = re.search(r"^\s*Thermal Status:\s*(\d+)", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def parse_getprop(text: str) -> dict[str, str]:
    """`getprop` without arguments: `[key]: [value]` lines (values may be empty)."""
    return dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, re.MULTILINE))


def parse_df_available_bytes(text: str) -> int | None:
    """Available bytes of the single filesystem in toybox `df` output (1K blocks)."""
    lines = [line.split() for line in text.strip().splitlines()]
    if len(lines) < 2 or "Available" not in lines[0]:
        return None
    # Columns from the right (Available, Use%, Mounted on): a long device name that
    # wraps onto its own line, as some df builds print, does not shift them.
    value = _int(lines[-1][-3]) if len(lines[-1]) >= 3 else None
    return None if value is None else value * 1024


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_absl_duration(text: str) -> float:
    """An absl duration ("182.114ms", "1.5s", "2m3.5s", "1h2m") in seconds."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not an absl duration: {text!r}")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TurnStats:
    """One prefill or decode turn as the runner reports it."""

    tokens: int
    duration_s: float
    tokens_per_s: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunnerStats:
    """`litert_lm_main --multi_turns --benchmark` output: answers and BenchmarkInfo."""

    answers: tuple[str, ...]
    init_total_s: float | None
    ttft_s: float | None
    prefill: tuple[TurnStats, ...]
    decode: tuple[TurnStats, ...]


_PROMPT = "Please enter the prompt (or press Enter to end): "
_TURN = re.compile(
    r"(Prefill|Decode) Turn (\d+): Processed (\d+) tokens in (\S+) duration\.\s*\n\s*\w+ Speed: ([\d.]+) tokens/sec"
)


def parse_litert_lm_stats(text: str) -> RunnerStats:
    """Parse the runner's stdout. Its "Time to first token" is computed by the runner
    (prefill 1 + one decode step), not measured; callers that can should measure their own.
    """
    head, _, bench = text.partition("BenchmarkInfo:")
    chunks = head.split(_PROMPT)[1:]
    answers = tuple(c.rstrip("\n") for c in chunks if c.strip())
    init = re.search(r"Total init time:\s*([\d.]+)\s*ms", bench)
    ttft = re.search(r"Time to first token:\s*([\d.]+)\s*s", bench)
    turns: dict[str, list[TurnStats]] = {"Prefill": [], "Decode": []}
    for kind, _n, tokens, duration, speed in _TURN.findall(bench):
        turns[kind].append(
            TurnStats(tokens=int(tokens), duration_s=parse_absl_duration(duration), tokens_per_s=float(speed))
        )
    return RunnerStats(
        answers=answers,
        init_total_s=float(init.group(1)) / 1000 if init else None,
        ttft_s=float(ttft.group(1)) if ttft else None,
        prefill=tuple(turns["Prefill"]),
        decode=tuple(turns["Decode"]),
    )
