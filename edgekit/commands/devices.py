"""`edgekit devices`: every adb device, plus `local`."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from edgekit.commands._common import error_line, print_json, stderr_console
from edgekit.device import open_device
from edgekit.device.parsers import STATUS_CHARGING, STATUS_FULL
from edgekit.errors import EdgekitError


def _row(serial: str, state: str) -> dict[str, Any]:
    row: dict[str, Any] = {"serial": serial, "state": state, "model": None, "android": None}
    row.update({"battery_pct": None, "charging": None, "emulated": None})
    if state != "device":
        return row
    try:
        device = open_device(serial)
        try:
            facts = device.facts()
            battery = device.battery()
        finally:
            device.close()
    except EdgekitError as exc:
        row["error"] = str(exc)
        return row
    row.update(
        model=facts.model,
        android=facts.android_release,
        battery_pct=battery.level_pct,
        charging=None if battery.status is None else battery.status in (STATUS_CHARGING, STATUS_FULL),
        emulated=facts.emulated,
    )
    return row


_STATE_HINTS = {
    "unauthorized": "unauthorized: accept the RSA prompt on the phone (tick 'Always allow')",
    "offline": "offline: reconnect the cable, or `adb reconnect offline`",
}


@click.command(
    "devices",
    short_help="List adb devices and `local`: state, model, battery.",
    epilog="""\b
Examples:
  edgekit devices
  edgekit devices --json | jq -r '.[] | select(.state == "device") | .serial'
""",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per device (with its error).")
def devices_command(as_json: bool) -> None:
    """List devices: every device the adb server knows (with its state, model, Android
    release and battery), and `local`, this computer. A device that cannot be read says
    why on its own line; a device in state `unauthorized` waits for you to accept the RSA
    prompt on the phone.

    Exits 0 when the adb server could be asked (whatever each device said), else with the
    error's code, after listing `local`.
    """
    from edgekit.device.adb import list_devices

    listing_error: EdgekitError | None = None
    try:
        listed = list_devices()
    except EdgekitError as exc:
        listed, listing_error = [], exc
    rows = [_row(serial, state) for serial, state in listed]
    rows.append(_row("local", "device"))
    for r in rows:
        r.setdefault("error", _STATE_HINTS.get(r["state"]))
    if as_json:
        print_json(rows)
    else:
        _print_table(rows)
    console = stderr_console()
    for r in rows:
        if r["error"]:
            message = r["error"].removeprefix(f"{r['serial']}: ")  # device errors often name it already
            console.print(Text(f"✗ {r['serial']}: {message}", style="red"), soft_wrap=True)
    if listing_error is not None:
        error_line(f"adb server: {listing_error}")
        raise click.exceptions.Exit(listing_error.exit_code)


def _print_table(rows: list[dict[str, Any]]) -> None:
    table = Table(box=None, pad_edge=False)
    for column in ("serial", "state", "model", "android", "battery", "charging"):
        table.add_column(column)
    for r in rows:
        battery = "—" if r["battery_pct"] is None else f"{r['battery_pct']}%"
        charging = "—" if r["charging"] is None else ("yes" if r["charging"] else "no")
        table.add_row(r["serial"], r["state"], r["model"] or "—", r["android"] or "—", battery, charging)
    Console(highlight=False).print(table)
