"""Pure parsers for what Android devices print, and for what any runner binary prints
(absl flags and durations, bionic's linker); a runtime's own output formats are parsed
in its module of edgekit.runtimes.

Each takes text and returns a typed value; none touches a device. Every variant in
`tests/captures/` parses (see tests/test_parsers.py). A field a device does not print is
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


_INT = re.compile(r"[-+]?[0-9]+")


def parse_int(text: str | None) -> int | None:
    """A decimal integer as a device prints it ("-412000", "80\\n"), else None (None, "", "unknown", "1.5")."""
    if text is None:
        return None
    text = text.strip()
    return int(text) if _INT.fullmatch(text) else None


def _bool(value: str | None) -> bool | None:
    return None if value is None else value.lower() == "true"


def parse_dumpsys_battery(text: str) -> BatteryInfo:
    """Parse `dumpsys battery` (AOSP, Samsung, minimal builds).

    Units converted: voltage mV -> µV, temperature 0.1 °C -> °C, Samsung's `current now`
    mA -> µA. `Charge counter` is already µAh.
    """
    f = _fields(text)
    voltage_mv = parse_int(f.get("voltage"))
    temp_dc = parse_int(f.get("temperature"))
    current_ma = parse_int(f.get("current now"))
    return BatteryInfo(
        level_pct=parse_int(f.get("level")),
        scale=parse_int(f.get("scale")),
        status=parse_int(f.get("status")),
        ac_powered=_bool(f.get("ac powered")),
        usb_powered=_bool(f.get("usb powered")),
        wireless_powered=_bool(f.get("wireless powered")),
        dock_powered=_bool(f.get("dock powered")),
        charge_counter_uah=parse_int(f.get("charge counter")),
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
    value = parse_int(lines[-1][-3]) if len(lines[-1]) >= 3 else None
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
    """One prefill or decode turn as a runner reports it."""

    tokens: int
    duration_s: float
    tokens_per_s: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class AbslFlag:
    """One flag as absl's `--helpfull` lists it: name, default (as printed), defining file."""

    name: str
    default: str
    source: str


def parse_absl_helpfull(text: str) -> dict[str, AbslFlag]:
    """absl `--helpfull` output (absl/flags/internal/usage.cc FlagsHelpImpl /
    FlagHelpHumanReadable): `  Flags from FILE:` headers, then per flag
    `    --name (help); default: VALUE;` wrapped at 80 columns with 6-space continuation
    lines. Absl flags carry no type in this output: a bool's default is true/false, a
    string's is quoted.
    """
    flags: dict[str, AbslFlag] = {}
    source = ""
    entry: list[str] = []

    def flush() -> None:
        if not entry:
            return
        joined = " ".join(part.strip() for part in entry)
        m = re.match(r"--([A-Za-z0-9_]+) \(", joined)
        if m:
            d = re.search(r"\); default: (.*?);(?: currently: .*?;)?$", joined)
            flags[m.group(1)] = AbslFlag(name=m.group(1), default=d.group(1) if d else "", source=source)
        entry.clear()

    # Lenient on indentation: an entry starts at `--name (`, indented lines continue it.
    for line in text.splitlines():
        header = re.match(r"^\s*Flags from (.+):\s*$", line)
        if header:
            flush()
            source = header.group(1)
        elif re.match(r"^\s*--[A-Za-z0-9_]+ \(", line):
            flush()
            entry.append(line)
        elif line[:1].isspace() and line.strip() and entry:
            entry.append(line)
        else:
            flush()
    flush()
    return flags


def parse_unknown_flag(text: str) -> str | None:
    """The flag absl rejected: `ERROR: Unknown command line flag 'NAME'` (absl/flags/parse.cc)."""
    m = re.search(r"Unknown command line flag '([^']+)'", text)
    return m.group(1) if m else None


def parse_cannot_link(text: str) -> str | None:
    """The library bionic's linker could not find: `CANNOT LINK EXECUTABLE "X": library
    "libY.so" not found: needed by main executable` (bionic linker/linker_main.cpp,
    linker.cpp); None if the text has no such line."""
    m = re.search(r'CANNOT LINK EXECUTABLE "[^"]*": library "([^"]+)" not found', text)
    if m:
        return m.group(1)
    m = re.search(r"CANNOT LINK EXECUTABLE \"[^\"]*\": (.*)", text)
    return m.group(1).strip() if m else None


def parse_check_failure(text: str) -> str | None:
    """An absl CHECK failure (`F0000 … file.cc:N] Check failed: …`), the message; else None."""
    m = re.search(r"^F\d{4} [^\]]*\] (.*)$", text, re.MULTILINE)
    return m.group(1).strip() if m else None
