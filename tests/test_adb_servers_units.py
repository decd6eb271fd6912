"""Which adb server, and which device on it (issue 16, item 1): the pure parts.

adb's own precedence is read from AOSP packages/modules/adb, client/commandline.cpp,
adb_commandline(); these cases are the ones that function distinguishes."""

from __future__ import annotations

import re

import pytest

from edgekit.device import AdbServer, Transport, resolve_devices
from edgekit.device.address import adb_env, default_server, split_device
from edgekit.errors import DeviceError, InputError

A = AdbServer.parse("10.0.0.5:5037")
B = AdbServer.parse("127.0.0.1:6000")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ("localhost", 5037)),
        ({"ANDROID_ADB_SERVER_PORT": "5038"}, ("localhost", 5038)),
        ({"ANDROID_ADB_SERVER_ADDRESS": "10.1.1.1", "ANDROID_ADB_SERVER_PORT": "5040"}, ("10.1.1.1", 5040)),
        # adb reads ANDROID_ADB_SERVER_ADDRESS, not adbutils' ANDROID_ADB_SERVER_HOST
        ({"ANDROID_ADB_SERVER_HOST": "10.9.9.9"}, ("localhost", 5037)),
        # ADB_SERVER_SOCKET wins over both variables
        (
            {
                "ADB_SERVER_SOCKET": "tcp:10.2.2.2:6001",
                "ANDROID_ADB_SERVER_ADDRESS": "x",
                "ANDROID_ADB_SERVER_PORT": "1",
            },
            ("10.2.2.2", 6001),
        ),
        ({"ADB_SERVER_SOCKET": "tcp:6002"}, ("localhost", 6002)),
    ],
)
def test_the_default_server_follows_adbs_precedence(environ: dict[str, str], expected: tuple[str, int]) -> None:
    server = default_server(environ)
    assert (server.host, server.port) == expected
    assert not server.named


def test_bad_server_settings_are_one_line_input_errors() -> None:
    with pytest.raises(InputError, match="edgekit speaks to an adb server over TCP only"):
        default_server({"ADB_SERVER_SOCKET": "localfilesystem:/tmp/adb"})
    with pytest.raises(InputError, match="ANDROID_ADB_SERVER_PORT='x' is not a port"):
        default_server({"ANDROID_ADB_SERVER_PORT": "x"})
    with pytest.raises(InputError, match="--adb-server 'nohost': give HOST:PORT"):
        AdbServer.parse("nohost")
    with pytest.raises(InputError, match="give HOST:PORT/SERIAL"):
        split_device("10.0.0.5:5037/")


def test_every_adb_process_gets_the_server_as_options() -> None:
    # -H/-P win over every environment variable in adb_commandline(), so these argv reach `server`.
    assert A.adb_args() == ["-H", "10.0.0.5", "-P", "5037"]
    # adb starts only a server it calls local: tcp:PORT, the default's spec; any -H is "remote"
    assert default_server({"ANDROID_ADB_SERVER_PORT": "5038"}).adb_args() == ["-P", "5038"]
    assert AdbServer.parse("localhost:5038").adb_args() == ["-H", "localhost", "-P", "5038"]
    assert adb_env({"ADB_SERVER_SOCKET": "tcp:1", "ANDROID_ADB_SERVER_ADDRESS": "h", "PATH": "/bin"}) == {
        "PATH": "/bin"
    }
    assert split_device("10.0.0.5:5037/R5CT1") == (A, "R5CT1")
    assert split_device("[::1]:5037/R5CT1")[0] == AdbServer(host="::1", port=5037)
    assert str(AdbServer(host="::1", port=5037)) == "[::1]:5037"
    assert split_device("127.0.0.1:5555") == (None, "127.0.0.1:5555")


def _listing(table: dict[AdbServer, list[tuple[str, str]]]):  # type: ignore[no-untyped-def]
    def list_devices(server: AdbServer) -> list[tuple[str, str]]:
        if server not in table:
            raise DeviceError(f"the adb server {server} does not answer")
        return table[server]

    return list_devices


def test_devices_on_several_servers_are_named_by_their_server() -> None:
    lab = _listing(
        {A: [("R1", "device"), ("SAME", "device"), ("R3", "offline")], B: [("SAME", "device"), ("R2", "device")]}
    )
    servers = (A, B)
    assert resolve_devices(("all",), servers=servers, list_devices=lab) == [
        "10.0.0.5:5037/R1",
        "10.0.0.5:5037/SAME",
        "127.0.0.1:6000/SAME",
        "127.0.0.1:6000/R2",
    ]
    assert resolve_devices(("R2",), servers=servers, list_devices=lab) == ["127.0.0.1:6000/R2"]
    assert resolve_devices(("127.0.0.1:6000/SAME",), servers=servers, list_devices=lab) == ["127.0.0.1:6000/SAME"]
    with pytest.raises(InputError) as ambiguous:
        resolve_devices(("SAME",), servers=servers, list_devices=lab)
    assert str(ambiguous.value) == (
        "--device SAME is on several adb servers: 10.0.0.5:5037/SAME and 127.0.0.1:6000/SAME: "
        "name one as HOST:PORT/SERIAL"
    )
    with pytest.raises(
        DeviceError, match=re.escape("--device NOPE: no such device on the adb servers 10.0.0.5:5037, 127")
    ):
        resolve_devices(("NOPE",), servers=servers, list_devices=lab)
    with pytest.raises(InputError, match=r"several devices \(10.0.0.5:5037/R1, "):
        resolve_devices((), servers=servers, list_devices=lab)
    with pytest.raises(DeviceError, match=re.escape("the adb server 10.9.9.9:1 does not answer")):
        resolve_devices(("all",), servers=(A, AdbServer.parse("10.9.9.9:1")), list_devices=lab)


@pytest.mark.parametrize("transport", [Transport.ADB, Transport.DIRECT])
def test_an_empty_serial_and_a_port_that_is_no_tcp_port_are_input_errors(transport: Transport) -> None:
    def nobody(server: AdbServer) -> list[tuple[str, str]]:
        raise AssertionError("no server is asked about a bad --device")

    with pytest.raises(InputError, match="--device is empty"):
        resolve_devices(("",), transport, list_devices=nobody)
    with pytest.raises(InputError, match=r"--device '127.0.0.1:99999'.*PORT 1-65535"):
        resolve_devices(("127.0.0.1:99999",), transport, list_devices=nobody)
    with pytest.raises(InputError, match="PORT 1-65535"):
        resolve_devices(("10.0.0.5:0",), transport, list_devices=nobody)
