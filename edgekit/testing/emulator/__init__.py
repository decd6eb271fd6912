"""An ADB device emulator: the device side of the ADB wire protocol, on 127.0.0.1 only.

It serves adb-shell directly and the real `adb` server (`adb connect 127.0.0.1:PORT`):
CNXN, AUTH (RSA signature over a 20-byte token; trusted keys only unless
`accept_any_key`), OPEN/OKAY/WRTE/CLSE with one unacknowledged write per stream, and the
services `shell:`, `exec:`, `shell,v2,raw:` / `shell,v2:` (stdin, stdout, stderr, exit,
close-stdin, window size) and `sync:` (STAT, LIST, SEND/DONE, RECV, QUIT).

Commands run with mksh (Android's shell) where it is installed, else /bin/sh, in a
sandbox folder whose device paths (/data, /sdcard, /sys, /system, /vendor) are mapped.

Stand-ins: `getprop`, `dumpsys battery` / `dumpsys thermalservice` / `dumpsys power`
(capture shapes), sysfs `power_supply/battery/*` and `power_supply/{usb,ac}/{online,type}`,
`settings`, `input`, and `df` (with a low-space fault). The simulated battery
(`testing.battery`) drains faster while a runner marks itself busy or a program stored on
the phone runs (a real llama-cli); `suspend()` stops the sampler like a suspended phone.
Closing a stream kills the command's process group.

One module per job:

* `wire` — packets, AUTH and streams (the ADB protocol itself);
* `services` — the shell and sync services a stream is opened for;
* `device` — the emulated phone: sandbox, props, battery and screen, path mapping, server;
* `standins/` — the stand-in programs, as the shell scripts they are (package data).
"""

from edgekit.testing.emulator.device import AdbDeviceEmulator, Faults, abi_props, default_props, host_machine_abi
from edgekit.testing.emulator.wire import decode_adb_public_key, verify_token_signature

__all__ = [
    "AdbDeviceEmulator",
    "Faults",
    "abi_props",
    "decode_adb_public_key",
    "default_props",
    "host_machine_abi",
    "verify_token_signature",
]
