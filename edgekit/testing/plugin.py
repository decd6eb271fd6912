"""pytest plugin registered by edgekit (entry point `pytest11`): test pipelines without a phone.

Fixtures:

* `emulated_device` — an ADB device emulator on 127.0.0.1 (ephemeral port) that trusts
  this test run's adb key; yields an `EmulatedDevice` (serial, sandbox, battery
  controller, faults, a runner stand-in to deploy: the default runtime's most capable
  runner, `Runtime.write_runner_standin`, whose module has the other upstream behaviours too).
* `adb_server` — a private adb server (its own ANDROID_ADB_SERVER_PORT; the user's server
  on 5037 is never touched), for tests that go through `AdbDevice` or the real `adb`.
* `tiny_gemma3_dir` — the tiny Gemma 3 example checkpoint, built once (needs edgekit[convert]).
* `host_abi_device` — `emulated_device` reporting this computer's ABI, for host binaries.

Everything the emulator reports is simulated (`ro.edgekit.emulated=1`).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit.testing.battery import BatteryController
from edgekit.testing.emulator import AdbDeviceEmulator, Faults


@dataclasses.dataclass
class EmulatedDevice:
    """A running emulated phone, as the `emulated_device` fixture yields it."""

    serial: str
    sandbox: Path
    battery: BatteryController
    faults: Faults
    emulator: AdbDeviceEmulator
    runner: Path

    def path(self, device_path: str) -> Path:
        """The sandbox file behind a device path."""
        mapped = self.emulator.map_device_path(device_path)
        if mapped is None:
            raise ValueError(f"{device_path} is not a device path the emulator maps")
        return mapped


@pytest.fixture(scope="session")
def adb_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME with this test run's adb key pair (~/.android/adbkey, mode 600)."""
    from edgekit.device.direct import ensure_adb_key

    home = tmp_path_factory.mktemp("adb-home")
    ensure_adb_key(home / ".android" / "adbkey")
    return home


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def adb_server(adb_home: Path) -> Iterator[int]:
    """A private adb server for this test run; yields its port (set as ANDROID_ADB_SERVER_PORT)."""
    from edgekit.device.adb import adb_binary

    port = _free_port()
    env = {**os.environ, "HOME": str(adb_home), "ANDROID_ADB_SERVER_PORT": str(port)}
    env.pop("ANDROID_USER_HOME", None)
    subprocess.run([adb_binary(), "start-server"], env=env, check=True, capture_output=True, timeout=60)
    previous = os.environ.get("ANDROID_ADB_SERVER_PORT")
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(port)
    try:
        yield port
    finally:
        subprocess.run([adb_binary(), "kill-server"], env=env, capture_output=True, timeout=60)
        if previous is None:
            os.environ.pop("ANDROID_ADB_SERVER_PORT", None)
        else:
            os.environ["ANDROID_ADB_SERVER_PORT"] = previous


def _emulated_phone(
    tmp_path: Path, adb_home: Path, monkeypatch: pytest.MonkeyPatch, *, host_abi: bool
) -> Iterator[EmulatedDevice]:
    from edgekit import runtimes

    monkeypatch.setenv("ANDROID_USER_HOME", str(adb_home / ".android"))
    public_key = (adb_home / ".android" / "adbkey.pub").read_bytes()
    emulator = AdbDeviceEmulator(tmp_path / "device", trusted_keys=[public_key], host_abi=host_abi).start()
    runner = runtimes.DEFAULT.write_runner_standin(tmp_path / runtimes.DEFAULT.runner_name)
    try:
        yield EmulatedDevice(
            serial=emulator.serial,
            sandbox=emulator.sandbox,
            battery=emulator.battery,
            faults=emulator.faults,
            emulator=emulator,
            runner=runner,
        )
    finally:
        emulator.stop()
        port = os.environ.get("ANDROID_ADB_SERVER_PORT")
        if port:  # a stale "offline" entry would outlive this emulator in the adb server
            from edgekit.device.adb import adb_binary

            env = {**os.environ, "HOME": str(adb_home)}
            subprocess.run([adb_binary(), "disconnect", emulator.serial], env=env, capture_output=True, timeout=30)


@pytest.fixture
def emulated_device(tmp_path: Path, adb_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedDevice]:
    """An emulated phone that trusts this run's adb key (ANDROID_USER_HOME points at it for
    the test); stopped, and disconnected from a private adb server, afterwards."""
    yield from _emulated_phone(tmp_path, adb_home, monkeypatch, host_abi=False)


@pytest.fixture
def host_abi_device(tmp_path: Path, adb_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedDevice]:
    """`emulated_device`, but the phone reports this computer's ABI (x86_64 here), so host
    binaries (the host build of llama.cpp) pass deploy's ABI check and run on it."""
    yield from _emulated_phone(tmp_path, adb_home, monkeypatch, host_abi=True)


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Gemma 3 checkpoint folder with random weights, built once per test session."""
    from edgekit.convert.example import TINY, write_example_model

    return write_example_model(tmp_path_factory.mktemp("tiny-gemma3") / "model", TINY)
