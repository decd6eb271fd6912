"""The phone around a run: keep its screen on and restore it after, its power supplies, its temperature."""

from __future__ import annotations

import dataclasses
import re
import time

from edgekit.bench.gauge import PowerSample, external_online
from edgekit.device import parsers
from edgekit.device.base import Device


def _screen(device: Device) -> str | None:
    """PowerManager's wakefulness (Awake, Asleep, Dozing, Dreaming); None where `dumpsys power`
    is unavailable. AOSP PowerManagerService.dumpInternal prints "  mWakefulness=Awake"."""
    out = device.shell(["dumpsys", "power"], check=False).stdout
    m = re.search(r"mWakefulness=(\w+)", out)
    return None if m is None else m.group(1)


def _setting(device: Device, namespace: str, key: str) -> str | None:
    r = device.shell(["settings", "get", namespace, key], check=False)
    value = r.stdout.strip()
    return value if r.returncode == 0 and value and " " not in value else None


# The screen stays ON, at a fixed low brightness, through the baselines and the workload:
# with the screen off and no wakelock (the shell user cannot take one), Android suspends
# and the run stalls; a chat app is used with the screen on; and a constant screen is part
# of the idle baseline, which is subtracted. A change of screen state voids the run.
_KEEP_SCREEN = (
    ("screen_off_timeout", str(24 * 3600 * 1000)),  # ms
    ("screen_brightness_mode", "0"),  # manual
    ("screen_brightness", "1"),  # the lowest "on" value of 0-255
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PhoneState:
    """The phone's screen as a run found it and what edgekit changed (meta.json's `phone`);
    the default: nothing changed (--no-prepare-screen, runs from before)."""

    changed: tuple[str, ...] = ()
    """What edgekit changed: the settings keys it put (screen_off_timeout, ...) and "screen" (woken up)."""
    settings_before: dict[str, str | None] = dataclasses.field(default_factory=dict)
    """Each setting's value before (`settings get`; "null": never set; None: unreadable)."""
    screen_before: str | None = None
    """PowerManager's wakefulness before (Awake, Asleep, ...); None where `dumpsys power` says nothing."""
    screen_during: str | None = None


def prepare_phone(device: Device) -> PhoneState:
    """Keep the screen on at a fixed low brightness for the run; record what was there before
    (restore_phone puts it back). Where `settings`/`dumpsys power` are missing, record "unknown"."""
    screen_before = _screen(device)
    settings_before: dict[str, str | None] = {}
    changed: list[str] = []
    for key, value in _KEEP_SCREEN:
        before = _setting(device, "system", key)
        settings_before[key] = before
        if before is None:
            continue
        if before != value:
            put = device.shell(["settings", "put", "system", key, value], check=False)
            if put.returncode == 0:
                changed.append(key)
    if screen_before not in (None, "Awake"):
        device.shell(["input", "keyevent", "224"], check=False)  # KEYCODE_WAKEUP
        changed.append("screen")
    device.shell(["wm", "dismiss-keyguard"], check=False)  # an unsecured lock screen would time out
    return PhoneState(
        changed=tuple(changed),
        settings_before=settings_before,
        screen_before=screen_before,
        screen_during=_screen(device),
    )


def restore_phone(device: Device, state: PhoneState, *, only_if_still_ours: bool = False) -> None:
    """Undo what prepare_phone changed.

    `only_if_still_ours`: put back only the settings that still hold the value edgekit set
    (the phone's driver may have restored them already, or the user changed them since), and
    leave the screen as it is: for --collect, which may come long after the run."""
    before = state.settings_before
    ours = dict(_KEEP_SCREEN)
    for key in state.changed:
        if key not in ours:
            continue
        if only_if_still_ours and _setting(device, "system", key) != ours[key]:
            continue
        if before.get(key) == "null":  # `settings get` prints null for a key that was never set
            device.shell(["settings", "delete", "system", key], check=False)
        elif (value := before.get(key)) is not None:
            device.shell(["settings", "put", "system", key, value], check=False)
    if "screen" in state.changed and not only_if_still_ours:
        device.shell(["input", "keyevent", "223"], check=False)  # KEYCODE_SLEEP


_SAFE_VALUE = re.compile(r"[0-9A-Za-z._-]+")


def restore_env(state: PhoneState) -> dict[str, str]:
    """What driver.sh needs in run.env to restore the phone itself when it ends, however it
    ends: RESTORE_SETTINGS ("key=value" words; null = delete) and RESTORE_SCREEN (1: put the
    screen back to sleep). A value that is not a plain word is left to the host's restore."""
    words = [
        f"{key}={value}"
        for key in state.changed
        if key in dict(_KEEP_SCREEN)
        and (value := state.settings_before.get(key)) is not None
        and _SAFE_VALUE.fullmatch(value)
    ]
    return {
        "RESTORE_SETTINGS": " ".join(words),
        "RESTORE_SCREEN": "1" if "screen" in state.changed else "0",
    }


def online_supplies(device: Device) -> list[str] | None:
    """External power supplies online now (sysfs, else `dumpsys battery`); None if unknown."""
    script = (
        'for d in /sys/class/power_supply/*; do [ -r "$d/online" ] || continue; o=; t=; '
        'read -r o < "$d/online"; [ -r "$d/type" ] && read -r t < "$d/type"; echo "${d##*/}:$t:$o"; done'
    )
    lines = [x for x in device.script(script, check=False).stdout.split() if x.count(":") == 2]
    if not lines:
        info = parsers.parse_dumpsys_battery(device.shell(["dumpsys", "battery"], check=False).stdout)
        pairs = [("ac", info.ac_powered), ("usb", info.usb_powered), ("wireless", info.wireless_powered)]
        lines = [f"dumpsys-{n}::{int(v)}" for n, v in pairs if v is not None]
    if not lines:
        return None
    sample = PowerSample(
        t_s=0,
        charge_counter_uah=None,
        current_raw=None,
        voltage_uv=None,
        level_pct=None,
        temperature_c=None,
        status=None,
        supplies="+".join(lines),
    )
    return external_online(sample)


def cool_down(device: Device, start_temperature_c: float | None, *, timeout_s: float = 600.0) -> None:
    """Wait until the battery is back to its starting temperature (+0.5 °C), at most `timeout_s`."""
    if start_temperature_c is None:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        t = device.battery().temperature_c
        if t is None or t <= start_temperature_c + 0.5:
            return
        time.sleep(5)
