"""`edgekit clean`: remove edgekit's files from devices, or edgekit's local caches."""

from __future__ import annotations

import shutil

import click

from edgekit.commands._common import print_json
from edgekit.commands.deploy import device_option, transport_option
from edgekit.device import Transport, open_device, resolve_devices
from edgekit.errors import InputError


@click.command("clean")
@device_option
@transport_option
@click.option("--all", "everything", is_flag=True, help="Remove everything, the newest deploy too.")
@click.option("--cache", is_flag=True, help="Remove edgekit's local caches (runner, logs, local device) instead.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
def clean_command(devices: tuple[str, ...], transport: str, everything: bool, cache: bool, as_json: bool) -> None:
    """Remove edgekit's files from a device (/data/local/tmp/edgekit): every model, runner
    and harness but the newest deploy's, or all of it with --all. With --cache, remove the
    local caches (~/.cache/edgekit) instead."""
    removed: list[str] = []
    if cache:
        if devices:
            raise InputError("--cache cleans this computer: do not combine it with --device")
        from edgekit._data import user_cache_dir

        root = user_cache_dir()
        if root.exists():
            shutil.rmtree(root)
            removed.append(str(root))
    else:
        from edgekit.deploy import clean

        for serial in resolve_devices(devices, Transport(transport)):
            device = open_device(serial, Transport(transport))
            try:
                removed += [f"{serial}:{p}" for p in clean(device, everything=everything)]
            finally:
                device.close()
    if as_json:
        print_json({"removed": removed})
    else:
        click.echo("\n".join(f"removed {p}" for p in removed) if removed else "nothing to remove")
