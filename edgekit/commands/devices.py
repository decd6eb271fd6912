"""`edgekit devices`: every device on every adb server, plus `local`."""

from __future__ import annotations

import concurrent.futures
import os
from typing import Any

import click
from rich.table import Table

from edgekit.commands._common import adb_server_option
from edgekit.commands.output import Output
from edgekit.device import AdbServer, open_device
from edgekit.device.address import default_server, device_name
from edgekit.device.parsers import STATUS_CHARGING, STATUS_FULL
from edgekit.errors import EdgekitError


def _row(name: str, state: str, server: AdbServer | None, serial: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "device": name,
        "serial": serial,
        "server": None if server is None else str(server),
        "state": state,
        "model": None,
        "android": None,
    }
    row.update({"battery_pct": None, "charging": None, "supply_online": None, "emulated": None})
    if state != "device":
        return row
    from edgekit.bench.phone import online_supplies

    try:
        with open_device(name) as device:
            facts = device.facts()
            battery = device.battery()
            supplies = online_supplies(device)
    except EdgekitError as exc:
        row["error"] = str(exc)
        return row
    row.update(
        model=facts.model,
        android=facts.android_release,
        battery_pct=battery.level_pct,
        charging=None if battery.status is None else battery.status in (STATUS_CHARGING, STATUS_FULL),
        supply_online=None if supplies is None else bool(supplies),
        emulated=facts.emulated,
    )
    return row


_STATE_HINTS = {
    "unauthorized": "unauthorized: accept the RSA prompt on the phone (tick 'Always allow')",
    "offline": "offline: reconnect the cable, or `adb reconnect offline`",
}


@click.command(
    "devices",
    short_help="List devices on every adb server, and `local`: state, model, battery.",
    epilog="""\b
Examples:
  edgekit devices
  edgekit devices --adb-server 10.0.0.5:5037 --adb-server localhost:5037
  edgekit devices --json | jq -r '.[] | select(.state == "device") | .device'
""",
)
@adb_server_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per device (with its error).")
def devices_command(adb_servers: tuple[AdbServer, ...], as_json: bool) -> None:
    """List devices: every device each adb server knows (its server, state, model, Android
    release, battery level and whether a supply is online), and `local`, this computer.
    The first column is what --device takes: HOST:PORT/SERIAL on a named --adb-server, the
    serial on the default one. A device that cannot be read says why on its own line; a
    device in state `unauthorized` waits for you to accept the RSA prompt on the phone. An
    adb server that does not answer is one error line; the others are still listed.

    Exits 0 when every adb server could be asked (whatever each device said), else with the
    error's code, after listing the rest and `local`.
    """
    from edgekit.device import adb

    output = Output(json=as_json)
    servers = adb_servers or (default_server(os.environ),)
    listed: list[tuple[AdbServer, str, str]] = []
    failures: list[tuple[AdbServer, EdgekitError]] = []
    for server in servers:
        try:
            listed += [(server, serial, state) for serial, state in adb.list_devices(server=server)]
        except EdgekitError as exc:
            failures.append((server, exc))
    # Each phone takes a few shell round trips: ask them all at once.
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        rows = list(pool.map(lambda x: _row(device_name(x[0], x[1]), x[2], x[0], x[1]), listed))
    rows.append(_row("local", "device", None, "local"))
    for r in rows:
        r.setdefault("error", _STATE_HINTS.get(r["state"]))
    if output.json:
        output.data(rows)
    else:
        _print_table(output, rows, several=len(servers) > 1 or bool(adb_servers))
    for r in rows:
        if r["error"]:
            message = r["error"].removeprefix(f"{r['device']}: ")  # device errors often name it already
            output.failed(r["device"], message)
    for server, failure in failures:
        output.error(str(failure) if str(server) in str(failure) else f"adb server {server}: {failure}")
    if failures:
        raise click.exceptions.Exit(max(failure.exit_code for _, failure in failures))


def _print_table(output: Output, rows: list[dict[str, Any]], *, several: bool) -> None:
    table = Table(box=None, pad_edge=False)
    columns = ["device", "state", "model", "android", "battery", "supply"]
    if several:
        columns.insert(2, "server")
    for column in columns:
        table.add_column(column)
    for r in rows:
        battery = "—" if r["battery_pct"] is None else f"{r['battery_pct']}%"
        supply = "—" if r["supply_online"] is None else ("online" if r["supply_online"] else "none")
        cells = [r["device"], r["state"], r["model"] or "—", r["android"] or "—", battery, supply]
        if several:
            cells.insert(2, r["server"] or "—")
        table.add_row(*cells)
    output.print(table, soft_wrap=False)
