"""DeviceError's subclasses a caller can act on, each transport's exception table, and
getprop / props: on stubs of the transports' libraries, FakeDevice and the ADB device emulator."""

from __future__ import annotations

import socket
import subprocess
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import adbutils
import pytest

from edgekit.bench import lock, run_folder
from edgekit.deploy import DeployConfig, deploy
from edgekit.device import adb, direct, local, shell_v2
from edgekit.device.adb import AdbDevice
from edgekit.device.base import ShellResult, check_result, map_error, mapped_errors
from edgekit.device.direct import DirectAdbDevice
from edgekit.device.local import LocalDevice
from edgekit.errors import (
    CommandFailed,
    DeviceBusy,
    DeviceError,
    DeviceTimeout,
    DeviceUnauthorized,
    DeviceUnreachable,
    LinkLost,
    RunLost,
    without_serial,
)
from edgekit.runtimes.litert_lm.bundle_writer import TFLITE_MODEL, write_bundle
from edgekit.runtimes.litert_lm.runner_standin import write_runner_standin
from edgekit.testing import FakeDevice
from edgekit.testing.plugin import EmulatedDevice

_SERIAL = "10.0.0.7:5555"


def _raises(exc: BaseException) -> Callable[..., Any]:
    def raise_it(*_args: object, **_kwargs: object) -> Any:
        raise exc

    return raise_it


def _instance(klass: type[BaseException]) -> BaseException:
    return klass("boom")


@pytest.mark.parametrize("klass", list(adb._ERRORS), ids=lambda k: k.__name__)
def test_each_adbutils_entry_gives_its_subclass_with_the_serial_once(klass: type[BaseException]) -> None:
    device = AdbDevice(_SERIAL)
    exc = _instance(klass)
    device._device = types.SimpleNamespace(shell2=_raises(exc))  # connected: the stub is adbutils' device
    with pytest.raises(DeviceError) as caught:
        device.shell(["true"])
    assert type(caught.value) is adb._ERRORS[klass]
    assert str(caught.value) == f"{_SERIAL}: connection to the device lost (boom)"
    assert str(caught.value).count(_SERIAL) == 1 and caught.value.serial == _SERIAL
    assert caught.value.__cause__ is exc and caught.value.exit_code == 5


@pytest.mark.parametrize("klass", list(direct._ERRORS), ids=lambda k: k.__name__)
@pytest.mark.parametrize("call", ["shell", "push", "pull"])
def test_each_adb_shell_entry_gives_its_subclass_and_drops_the_connection(
    klass: type[BaseException], call: str, tmp_path: Any
) -> None:
    device = DirectAdbDevice("10.0.0.7")
    exc = _instance(klass)
    closed: list[bool] = []
    broken = _raises(exc)
    device._dev = types.SimpleNamespace(push=broken, pull=broken, close=lambda: closed.append(True))
    device._shell_v2 = broken  # type: ignore[method-assign]
    local = tmp_path / "f"
    local.write_bytes(b"x")
    with pytest.raises(DeviceError) as caught:
        if call == "shell":
            device.shell(["true"])
        elif call == "push":
            device.push(local, "/data/local/tmp/f")
        else:
            device.pull("/data/local/tmp/f", local)
    assert type(caught.value) is direct._ERRORS[klass]
    assert str(caught.value) == f"{_SERIAL}: connection to the device lost (boom)"
    assert caught.value.__cause__ is exc
    assert closed == [True] and device._dev is None  # the next command connects again


def test_the_most_specific_class_in_a_table_wins_and_others_pass_through() -> None:
    # AdbTimeout is an AdbError; ConnectionResetError an OSError; socket.timeout is TimeoutError.
    assert map_error(adb._ERRORS, adbutils.AdbTimeout("t")) is DeviceTimeout
    assert map_error(adb._ERRORS, adbutils.errors.AdbConnectionError("c")) is LinkLost
    assert map_error(direct._ERRORS, ConnectionResetError("r")) is LinkLost
    assert map_error(direct._ERRORS, TimeoutError("t")) is DeviceTimeout
    assert map_error(direct._ERRORS, ValueError("v")) is None
    with pytest.raises(ValueError, match="not ours"), mapped_errors(FakeDevice(), adb._ERRORS, str):
        raise ValueError("not ours")
    refused = DeviceUnreachable("x", "down")
    with pytest.raises(DeviceUnreachable) as caught, mapped_errors(FakeDevice(), direct._ERRORS, str):
        raise refused
    assert caught.value is refused  # a DeviceError of ours is no library error: left as it is


class _Client:
    """An adbutils client that lists one device in one state."""

    def __init__(self, serial: str, state: str) -> None:
        self.serial, self.state = serial, state
        self.server = adb.environment_server()

    def list(self) -> list[Any]:
        return [types.SimpleNamespace(serial=self.serial, state=self.state)]


def test_a_caller_can_catch_the_unauthorized_phone_on_its_own() -> None:
    device = AdbDevice("R5CT1", client=_Client("R5CT1", "unauthorized"))  # type: ignore[arg-type]
    try:
        device.shell(["true"])
    except DeviceUnauthorized as exc:
        caught: DeviceError = exc
    assert str(caught) == "R5CT1: device unauthorized: accept the RSA prompt on the phone (tick 'Always allow')"
    assert caught.serial == "R5CT1" and not isinstance(caught, DeviceUnreachable)
    offline = AdbDevice("R5CT2", client=_Client("R5CT2", "offline"))  # type: ignore[arg-type]
    with pytest.raises(DeviceUnreachable, match=r"^R5CT2: device offline: reconnect the cable"):
        offline.shell(["true"])


def test_a_direct_connection_nobody_answers_is_unreachable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeviceUnreachable, match=rf"^127.0.0.1:{port}: cannot connect \("):
        DirectAdbDevice("127.0.0.1", port, connect_timeout_s=2).shell(["true"])


def test_the_serial_prefix_is_written_once_by_the_error_itself() -> None:
    fake = FakeDevice("fake-9")
    assert str(LinkLost(fake, "gone")) == "fake-9: gone"
    assert str(DeviceTimeout("local", "slow")) == "local: slow"
    base = DeviceError("not enough space", serial="fake-9", cmd="true", returncode=1, stderr="e")
    assert str(base) == "fake-9: not enough space" and base.reason == "not enough space"
    assert (base.serial, base.cmd, base.returncode, base.stderr) == ("fake-9", "true", 1, "e")
    assert str(DeviceError("no device: connect a phone")) == "no device: connect a phone"  # no serial, no prefix
    busy = DeviceBusy("run X is running on this phone", serial="fake-9", run_id="X")
    assert str(busy) == "fake-9: run X is running on this phone" and busy.run_id == "X"
    with pytest.raises(CommandFailed) as failed:
        check_result("fake-9", ["ls", "/x"], ShellResult(2, "", "no /x\n"), True)
    assert str(failed.value) == "fake-9: `ls /x` exited 2: no /x"
    assert (failed.value.cmd, failed.value.returncode, failed.value.stderr) == ("ls /x", 2, "no /x\n")


def test_the_modules_raise_the_subclass_that_fits() -> None:
    fake = FakeDevice()
    with pytest.raises(CommandFailed, match=r"^fake-1: no run nope on the device$"):
        run_folder.read_files(fake, run_folder.run_paths(fake, "nope", ""))
    with pytest.raises(LinkLost, match=r"^fake-1: `true` ended without an exit code$"):
        shell_v2.Collector().result("fake-1", "true")
    with pytest.raises(DeviceTimeout, match=r"^local: `sleep 5` timed out after 0 s$"):
        LocalDevice().shell(["sleep", "5"], timeout_s=0.2)

    def refuse(_script: str) -> ShellResult:
        return ShellResult(0, "none\n", "")  # the lock vanished between ln and the check

    fake.on_script("printf", refuse)
    with pytest.raises(CommandFailed, match=r"^fake-1: could not take the phone's run lock: none$"):
        lock.acquire(fake, "r1")


def test_getprop_and_props_on_the_fake() -> None:
    fake = FakeDevice(abis=("arm64-v8a", "armeabi-v7a"))
    assert fake.getprop("ro.product.model") == "FakeDevice"
    assert fake.getprop("ro.no.such.prop") == ""
    props = fake.props()
    assert props["ro.product.cpu.abilist"] == "arm64-v8a,armeabi-v7a" and props["ro.build.version.sdk"] == "34"


def test_getprop_and_props_on_the_emulator(emulated_device: EmulatedDevice) -> None:
    host, port = emulated_device.serial.rsplit(":", 1)
    with DirectAdbDevice(host, int(port), connect_timeout_s=5, auth_timeout_s=2) as device:
        assert device.getprop("ro.product.model") == "Emulated Phone"
        props = device.props()
        assert props["ro.edgekit.emulated"] == "1" and props["ro.soc.model"] == "EmuSoC"
        assert device.facts().emulated


def test_amend_keeps_the_class_the_fields_and_one_prefix() -> None:
    error = CommandFailed("R5CT1", "the model does not load (exit 1): boom", returncode=1, stderr="boom")
    error.amend(" (the model was removed from the device)")
    assert type(error) is CommandFailed and (error.returncode, error.stderr) == (1, "boom")
    assert str(error) == "R5CT1: the model does not load (exit 1): boom (the model was removed from the device)"
    assert error.reason == "the model does not load (exit 1): boom (the model was removed from the device)"


def test_run_lost_names_the_phone_once_whatever_its_cause_said() -> None:
    run = "20261203-070000-abcdef"
    for cause in (LinkLost("fake-1", "connection to the device lost (reset)"), DeviceError("the cable went away")):
        lost = RunLost("fake-1", run, cause)
        assert str(lost).startswith(f"fake-1: {cause.reason}; run {run} goes on on the phone"), str(lost)
        assert str(lost).count("fake-1: ") == 1 and lost.exit_code == 5
    assert without_serial(LinkLost("fake-1", "gone"), "fake-1") == "gone"
    assert without_serial(LinkLost("fake-2", "gone"), "fake-1") == "fake-2: gone"
    assert without_serial(ValueError("x"), "fake-1") == "x"


@pytest.mark.parametrize(
    ("exc", "kind", "said"),
    [
        (subprocess.TimeoutExpired(["/bin/sh"], 3.0), DeviceTimeout, "`true` timed out after 3 s"),
        (FileNotFoundError(2, "No such file or directory"), CommandFailed, "`true` failed: No such file or directory"),
        (PermissionError(13, "Permission denied"), CommandFailed, "`true` failed: Permission denied"),
    ],
)
def test_each_local_entry_gives_its_subclass_with_the_serial_once(
    exc: BaseException, kind: type[DeviceError], said: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert map_error(local._ERRORS, exc) is kind
    monkeypatch.setattr(subprocess, "run", _raises(exc))
    with pytest.raises(kind) as caught:
        LocalDevice(tmp_path).shell(["true"])
    assert str(caught.value) == f"local: {said}" and caught.value.__cause__ is exc


def test_a_local_copy_that_fails_is_a_command_failed(tmp_path: Path) -> None:
    device = LocalDevice(tmp_path / "root")
    with pytest.raises(CommandFailed) as pulled:
        device.pull(str(tmp_path / "nope"), tmp_path / "here")
    assert str(pulled.value) == f"local: pull of {tmp_path / 'nope'} failed: No such file or directory"
    with pytest.raises(CommandFailed, match=r"^local: push of .*missing failed: No such file or directory$"):
        device.push(tmp_path / "missing", str(tmp_path / "root" / "x"))


def test_deploy_and_session_messages_name_the_device_once(tmp_path: Path) -> None:
    from edgekit.bench.lock import LockHolder, busy_message

    fake = FakeDevice(free_bytes=1000)
    artifact = write_bundle(tmp_path / "m.litertlm", [(TFLITE_MODEL, b"model bytes " * 1000)])
    with pytest.raises(DeviceError) as caught:
        deploy(fake, artifact, DeployConfig(runner=write_runner_standin(tmp_path / "litert_lm_main", "advanced")))
    assert str(caught.value).startswith("fake-1: not enough space for /data/local/tmp/edgekit")
    assert str(caught.value).count("fake-1: ") == 1
    who = LockHolder(run_id="r1", started="2026-12-03T07:00:00+00:00")
    busy = DeviceBusy(busy_message("fake-1", who), serial="fake-1", run_id="r1")
    assert str(busy).startswith("fake-1: run r1 (started 2026-12-03T07:00:00+00:00) is running on this phone")
    assert str(busy).count("fake-1: ") == 1
