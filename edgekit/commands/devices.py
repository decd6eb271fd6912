"""`edgekit devices`: every adb device, plus `local`."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from edgekit.commands._common import print_json
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


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def devices_command(as_json: bool) -> None:
    """List devices: every device the adb server knows (with its state), and `local`,
    this computer. A device in state `unauthorized` waits for you to accept the RSA prompt
    on the phone."""
    from edgekit.device.adb import list_devices

    rows = [_row(serial, state) for serial, state in list_devices()]
    rows.append(_row("local", "device"))
    if as_json:
        print_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("serial", "state", "model", "android", "battery", "charging"):
        table.add_column(column)
    for r in rows:
        battery = "—" if r["battery_pct"] is None else f"{r['battery_pct']}%"
        charging = "—" if r["charging"] is None else ("yes" if r["charging"] else "no")
        table.add_row(r["serial"], r["state"], r["model"] or "—", r["android"] or "—", battery, charging)
    Console(highlight=False).print(table)
