"""`edgekit clean`: remove edgekit's files from devices, or edgekit's local caches."""

from __future__ import annotations

import shutil

import click

from edgekit.commands._common import adb_server_option, device_option, transport_option
from edgekit.commands.output import Output
from edgekit.device import AdbServer, Transport, open_device, resolve_devices
from edgekit.errors import InputError


@click.command(
    "clean",
    short_help="Remove edgekit's files from devices, or its local caches.",
    epilog="""\b
Examples:
  edgekit clean --device SERIAL                 keep only the newest deploy on the phone
  edgekit clean --device all --everything       remove /data/local/tmp/edgekit from every phone
  edgekit clean --adb-server 10.0.0.5:5037 --device all   every phone on that host's adb server
  edgekit clean --cache                         remove ~/.cache/edgekit on this computer
""",
)
@device_option(several="each is cleaned in turn")
@adb_server_option
@transport_option
@click.option("--everything", is_flag=True, help="Remove all of /data/local/tmp/edgekit, the newest deploy too.")
@click.option("--all", "all_deprecated", is_flag=True, hidden=True, help="Deprecated spelling of --everything.")
@click.option("--cache", is_flag=True, help="Remove edgekit's local caches (runner, logs, local device) instead.")
@click.option(
    "--force",
    is_flag=True,
    help="Clean even while a battery-bench run holds the phone (that run then fails).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
def clean_command(
    devices: tuple[str, ...],
    adb_servers: tuple[AdbServer, ...],
    transport: str,
    everything: bool,
    all_deprecated: bool,
    cache: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Remove edgekit's files from a device (/data/local/tmp/edgekit): every model, runner
    and harness but the newest deploy's, or all of it with --everything. With --cache,
    remove the local caches (~/.cache/edgekit) instead.

    A phone on which a battery-bench run is going (its lock, /data/local/tmp/edgekit/bench.lock,
    names a live run) is refused, naming the run, unless --force."""
    output = Output(json=as_json)
    if all_deprecated:
        # `--all` read like `--device all`; the old spelling still works, for now.
        output.note("--all is deprecated: use --everything")
        everything = True
    removed: list[str] = []
    if cache:
        if devices or everything or adb_servers:
            raise InputError(
                "--cache cleans this computer: do not combine it with --device, --adb-server or --everything"
            )
        from edgekit._data import user_cache_dir

        root = user_cache_dir()
        if root.exists():
            shutil.rmtree(root)
            removed.append(str(root))
    else:
        from edgekit.placement import clean

        for serial in resolve_devices(devices, Transport(transport), servers=adb_servers):
            with open_device(serial, Transport(transport)) as device:
                removed += [f"{serial}:{p}" for p in clean(device, everything=everything, force=force)]
    if output.json:
        output.data({"removed": removed})
    else:
        output.echo("\n".join(f"removed {p}" for p in removed) if removed else "nothing to remove")
