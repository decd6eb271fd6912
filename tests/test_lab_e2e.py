"""A phone lab (issue 16, items 1 and 2): four emulated phones behind two real adb servers
(the adb adbutils ships, each server on its own port, `adb connect`ed to its phones), one
adb server that is down, and the CLI finding, deploying to and benchmarking them."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from edgekit.artifact import manifest_path, sha256_file
from edgekit.bench.result import BenchResult
from edgekit.convert import ConvertResult
from edgekit.device import AdbServer
from edgekit.device.adb import _server_listening, adb_binary, ensure_server, list_devices
from edgekit.runtimes.litert_lm.bundle_writer import TFLITE_MODEL, write_bundle
from edgekit.runtimes.litert_lm.runner_standin import write_runner_standin
from edgekit.testing.emulator import AdbDeviceEmulator
from edgekit.testing.plugin import _free_port
from tests.conftest import run_cli, small_workload, wait_for

ROOT = "/data/local/tmp/edgekit"


@dataclasses.dataclass
class Lab:
    """Two adb servers, A with phones 0 and 1, B with phones 2 and 3; `dead` answers nothing."""

    a: AdbServer
    b: AdbServer
    dead: AdbServer
    phones: list[AdbDeviceEmulator]
    runner: Path
    env: dict[str, str]

    def name(self, i: int) -> str:
        """Phone i as edgekit calls it: HOST:PORT/SERIAL on its server."""
        return f"{self.a if i < 2 else self.b}/{self.phones[i].serial}"

    def servers(self, *servers: AdbServer) -> list[str]:
        out = []
        for s in servers or (self.a, self.b):
            out += ["--adb-server", str(s)]
        return out


def _adb(server: AdbServer, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANDROID_ADB", "ADB_SERVER"))}
    env["HOME"] = str(home)
    env.pop("ANDROID_USER_HOME", None)
    argv = [adb_binary(), "-P", str(server.port), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=True)


@pytest.fixture(scope="module")
def lab(adb_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab")
    a, b, dead = (AdbServer(host="127.0.0.1", port=_free_port()) for _ in range(3))
    key = (adb_home / ".android" / "adbkey.pub").read_bytes()
    phones: list[AdbDeviceEmulator] = []
    try:
        for server in (a, b):
            _adb(server, adb_home, "start-server")
        for i in range(4):
            phones.append(AdbDeviceEmulator(root / f"phone{i}", trusted_keys=[key]).start())
        for i, phone in enumerate(phones):
            client = ensure_server(server=a if i < 2 else b)
            assert "connected" in client.connect(phone.serial, timeout=10)
        for server, mine in ((a, phones[:2]), (b, phones[2:])):
            wait_for(
                lambda s=server, m=mine: (
                    {d for d, st in list_devices(server=s) if st == "device"}  # type: ignore[misc]
                    == {p.serial for p in m}
                ),
                what=f"adb server {server} to see its two phones",
                timeout_s=60,
            )
        # Whatever adb would pick from the environment is neither server: the lab is reached
        # only through --adb-server (a default server edgekit started would show up here).
        env = {"ADB_SERVER_SOCKET": f"tcp:127.0.0.1:{dead.port}", "ANDROID_ADB_SERVER_PORT": str(dead.port)}
        yield Lab(a=a, b=b, dead=dead, phones=phones, runner=write_runner_standin(root / "litert_lm_main"), env=env)
    finally:
        for phone in phones:
            phone.stop()
        for server in (a, b):
            subprocess.run(
                [adb_binary(), "-P", str(server.port), "kill-server"],
                env={**os.environ, "HOME": str(adb_home)},
                capture_output=True,
                timeout=60,
            )


def test_devices_lists_every_phone_on_every_server_and_a_dead_server_in_one_line(lab: Lab) -> None:
    proc = run_cli("devices", *lab.servers(lab.a, lab.dead, lab.b), "--json", env=lab.env)
    assert proc.returncode == 5, proc.stderr
    rows = {r["device"]: r for r in json.loads(proc.stdout)}
    assert sorted(rows) == sorted([*(lab.name(i) for i in range(4)), "local"])
    for i in range(4):
        row = rows[lab.name(i)]
        assert row["server"] == str(lab.a if i < 2 else lab.b) and row["serial"] == lab.phones[i].serial
        assert row["state"] == "device" and row["model"] == "Emulated Phone" and row["error"] is None
        assert row["android"] == lab.phones[i].props["ro.build.version.release"]
        published = int((lab.phones[i].power_dir / "capacity").read_text())  # what the phone's sysfs says now
        assert abs(row["battery_pct"] - published) <= 1
        assert row["supply_online"] is False
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"edgekit: error: the adb server {lab.dead} does not answer: start it there "
        f"(`adb -a -P {lab.dead.port} server nodaemon`) or leave out its --adb-server"
    ]
    # The table: one line per phone, named as --device takes it, with its server.
    table = run_cli("devices", *lab.servers(), env=lab.env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["device", "state", "server", "model", "android", "battery", "supply"]
    for i in range(4):
        [line] = [x for x in lines if x.startswith(lab.name(i) + " ")]
        assert line.split()[:3] == [lab.name(i), "device", str(lab.a if i < 2 else lab.b)]
        assert line.split()[-1] == "none"


def test_a_serial_on_two_servers_is_ambiguous_and_host_port_serial_picks_one(lab: Lab, adb_home: Path) -> None:
    phone = lab.phones[0]
    client = ensure_server(server=lab.b)
    assert "connected" in client.connect(phone.serial, timeout=10)  # phone 0 now on A and on B
    marker = phone.sandbox / ROOT.lstrip("/") / "models" / "x"
    try:
        wait_for(
            lambda: (phone.serial, "device") in list_devices(server=lab.b),
            what="adb server B to see phone 0",
            timeout_s=60,
        )
        proc = run_cli("clean", *lab.servers(), "--device", phone.serial, "--everything", env=lab.env)
        assert proc.returncode == 2
        assert proc.stderr.splitlines() == [
            f"edgekit: error: --device {phone.serial} is on several adb servers: {lab.a}/{phone.serial} and "
            f"{lab.b}/{phone.serial}: name one as HOST:PORT/SERIAL"
        ]
        marker.mkdir(parents=True)
        on_b = f"{lab.b}/{phone.serial}"
        proc = run_cli("clean", *lab.servers(), "--device", on_b, "--everything", "--json", env=lab.env)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == {"removed": [f"{on_b}:{ROOT}"]}
        assert not marker.exists()
        # A bare serial found on one server only is that server's device.
        other = lab.phones[3]
        (other.sandbox / ROOT.lstrip("/") / "models" / "y").mkdir(parents=True)
        proc = run_cli("clean", *lab.servers(), "--device", other.serial, "--everything", "--json", env=lab.env)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == {"removed": [f"{lab.name(3)}:{ROOT}"]}
    finally:
        client.disconnect(phone.serial)


def test_deploy_pushes_through_the_named_server(lab: Lab, tmp_path: Path) -> None:
    artifact = write_bundle(tmp_path / "m.litertlm", [(TFLITE_MODEL, os.urandom(200_000))])
    phone = lab.phones[2]  # on B only; the environment points adb at the dead port
    args = ["deploy", *lab.servers(lab.b), "--device", phone.serial, "--runner", str(lab.runner), "--no-smoke"]
    proc = run_cli(*args, str(artifact), env=lab.env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"✓ {lab.name(2)} (Emulated Phone, Android ")
    sha = sha256_file(artifact)
    pushed = phone.map_device_path(f"{ROOT}/models/{sha}/model.litertlm")
    assert pushed is not None and sha256_file(pushed) == sha
    # Nothing reached (or started) a server on the port the environment names.
    assert not _server_listening(lab.dead)


def _mapped(phone: AdbDeviceEmulator, device_path: str) -> Path:
    mapped = phone.map_device_path(device_path)
    assert mapped is not None
    return mapped


def _span_ns(run_dir: Path) -> tuple[int, int]:
    """(start, end) of a run on this computer's clock: its meta.json, pushed when it starts,
    and the newest file it wrote (the emulated phone's sandbox is on this computer)."""
    files = [f for f in run_dir.rglob("*") if f.is_file()]
    return (run_dir / "meta.json").stat().st_mtime_ns, max(f.stat().st_mtime_ns for f in files)


@pytest.mark.slow
def test_battery_bench_runs_every_phone_at_once_and_a_failing_phone_stops_none(
    lab: Lab, int4_result: ConvertResult, tmp_path: Path
) -> None:
    for phone in lab.phones:
        phone.extra_env["EDGEKIT_STANDIN_TURN_S"] = "1.5"  # runs long enough to see them overlap
    lab.phones[3].extra_env["EDGEKIT_STANDIN_PAD"] = "1"  # a broken backend: every answer <pad>
    unreachable = f"{lab.a}/127.0.0.1:9"  # the discard port: no phone there
    out = tmp_path / "r.json"
    args = ["battery-bench", *lab.servers(), "--device", "all", "--device", unreachable]
    args += ["--runner", str(lab.runner), "--workload", str(small_workload(tmp_path, 1))]
    args += ["--baseline-s", "0.5", "--sample-s", "0.1", "--no-cooldown", "-o", str(out), "--json"]
    try:
        proc = run_cli(*args, str(int4_result.artifact.path), env=lab.env)
    finally:
        for phone in lab.phones:
            phone.extra_env.clear()
    assert proc.returncode == 7, proc.stderr  # the worst: the <pad> phone's failed run (7) over the lost one (5)
    names = [lab.name(i) for i in range(4)]
    documents = json.loads(proc.stdout)
    listed = [d.get("device", {}).get("serial", d.get("serial")) for d in documents]
    # `all` in each server's own order (A's phones, then B's), then the named one
    assert (
        sorted(listed[:2]) == sorted(names[:2])
        and sorted(listed[2:4]) == sorted(names[2:])
        and listed[4] == unreachable
    )
    assert documents[4]["error"].startswith(f"{unreachable}: ")
    assert f"✗ {unreachable}: " in proc.stderr
    results = [BenchResult.load(tmp_path / f"r-{re.sub(r'[^0-9A-Za-z._-]+', '_', n)}.json") for n in names]
    assert [r.device.serial for r in results] == names
    assert all(r.complete for r in results)
    assert results[3].degenerate and results[3].exit_code() == 7
    for r in results[:3]:  # the others' runs stand, whatever the pad phone did
        assert not r.degenerate and r.exit_code() != 7 and r.summary.decode_tokens_per_s
    for name, r in zip(names, results, strict=True):
        assert f"run {r.run_id} started on {name}; if this is cut off: " in proc.stderr
    spans = [_span_ns(_mapped(lab.phones[i], f"{ROOT}/runs/{r.run_id}")) for i, r in enumerate(results)]
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans  # all four ran at once


@pytest.mark.slow
def test_detach_starts_every_phone_and_collect_all_gets_every_run(
    lab: Lab, int4_result: ConvertResult, tmp_path: Path
) -> None:
    env = {**lab.env, "XDG_STATE_HOME": str(tmp_path / "state")}  # this test's own index of runs
    args = ["battery-bench", *lab.servers(), "--device", "all", "--runner", str(lab.runner)]
    args += ["--workload", str(small_workload(tmp_path, 1)), "--baseline-s", "0.3", "--sample-s", "0.1"]
    proc = run_cli(*args, "--detach", "--settle-s", "0.2", "--json", str(int4_result.artifact.path), env=env)
    assert proc.returncode == 0, proc.stderr
    states = json.loads(proc.stdout)
    names = {lab.name(i) for i in range(4)}
    assert {s["device"] for s in states} == names and {s["state"] for s in states} == {"waiting_for_unplug"}
    run_ids = {s["device"]: s["run_id"] for s in states}
    listed = json.loads(run_cli("runs", "--json", env=env).stdout)
    assert {(r["device"], r["run_id"]) for r in listed} == set(run_ids.items())

    def finished(i: int) -> bool:
        status = _mapped(lab.phones[i], f"{ROOT}/runs/{run_ids[lab.name(i)]}/status")
        return status.exists() and status.read_text().strip() == "done"

    wait_for(lambda: all(finished(i) for i in range(4)), what="the four detached runs to finish", timeout_s=300)
    out = tmp_path / "c.json"
    # PYTHONFAULTHANDLER: should the command ever die of a signal, its stderr says where
    collected = run_cli(
        "battery-bench", "--collect", "all", "-o", str(out), "--json", env={**env, "PYTHONFAULTHANDLER": "1"}
    )
    assert collected.stdout.startswith("["), (collected.returncode, collected.stderr)
    documents = json.loads(collected.stdout)
    assert {(d["device"]["serial"], d["run_id"]) for d in documents} == set(run_ids.items()), collected.stderr
    results = [BenchResult.load(tmp_path / f"c-{re.sub(r'[^0-9A-Za-z._-]+', '_', n)}.json") for n in names]
    assert all(r.complete for r in results)
    assert collected.returncode == max(r.exit_code() for r in results), collected.stderr  # the worst of them
    assert json.loads(run_cli("runs", "--json", env=env).stdout) == []  # collected, so forgotten


@pytest.mark.slow
def test_ctrl_c_stops_every_phones_run_and_names_each(lab: Lab, int4_result: ConvertResult, tmp_path: Path) -> None:
    state = tmp_path / "state"
    phones = [1, 2]  # one on each server
    args = ["battery-bench", *lab.servers(), "--device", lab.name(1), "--device", lab.name(2)]
    args += ["--runner", str(lab.runner), "--workload", str(small_workload(tmp_path, 1)), "--baseline-s", "60"]
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "EDGEKIT_DEBUG"}
    env.update(lab.env, HOME=str(home), XDG_STATE_HOME=str(state), COLUMNS="200")
    argv = [sys.executable, "-m", "edgekit", *args, str(int4_result.artifact.path)]
    before = {i: set(_mapped(lab.phones[i], f"{ROOT}/runs").glob("*/driver.pid")) for i in phones}  # earlier tests'
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid_files = [
            wait_for(
                lambda i=i: list(set(_mapped(lab.phones[i], f"{ROOT}/runs").glob("*/driver.pid")) - before[i]),  # type: ignore[misc]
                what=f"phone {i}'s driver to start",
            )[0]
            for i in phones
        ]
        for pid_file in pid_files:
            wait_for(lambda p=pid_file: p.read_text().strip(), what="the driver's pid")  # type: ignore[misc]
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "edgekit: error" not in err
    for i, pid_file in zip(phones, pid_files, strict=True):
        run_id = pid_file.parent.name
        stopped = [x for x in err.splitlines() if x.startswith(f"interrupted: run {run_id} stopped on {lab.name(i)}")]
        assert len(stopped) == 1, err
        [line] = stopped
        assert f"--device {lab.name(i)} --collect {run_id}" in line
        assert not _mapped(lab.phones[i], f"{ROOT}/bench.lock").exists()  # stopped there, the phone released
        assert (state / "edgekit" / "runs" / f"{run_id}.json").exists()  # kept for --collect


@pytest.mark.slow
def test_ab_runs_the_artifacts_interleaved_on_each_phone_and_a_failing_one_stops_no_other_run(
    lab: Lab, int4_result: ConvertResult, tmp_path: Path
) -> None:
    # A and B: the tiny model under two names (B with its own manifest); X: a bundle whose
    # model is random bytes, which the runner cannot load, so each of its runs fails.
    a = int4_result.artifact.path
    b = tmp_path / "b.litertlm"
    shutil.copyfile(a, b)
    shutil.copyfile(manifest_path(a), manifest_path(b))
    x = write_bundle(tmp_path / "x.litertlm", [(TFLITE_MODEL, os.urandom(50_000))])
    phones = {0: 31.5, 2: 34.2}  # one phone on each server, each at its own battery temperature
    for i, celsius in phones.items():
        lab.phones[i].battery.temperature_c = celsius
    out = tmp_path / "ab.json"
    args = ["battery-bench", *lab.servers(), "--device", lab.name(0), "--device", lab.name(2)]
    args += ["--runner", str(lab.runner), "--workload", str(small_workload(tmp_path, 1)), "--repeat", "2"]
    args += ["--baseline-s", "0.3", "--sample-s", "0.1", "--no-cooldown", "-o", str(out), "--json"]
    try:
        proc = run_cli(*args, str(a), str(x), str(b), env=lab.env)
    finally:
        for i in phones:
            lab.phones[i].battery.temperature_c = 30.0
    documents = json.loads(proc.stdout)
    assert len(documents) == 2 * 3, proc.stderr  # one per phone and artifact
    codes = []
    for i, celsius in phones.items():
        safe = re.sub(r"[^0-9A-Za-z._-]+", "_", lab.name(i))
        runs = {
            (label, n): BenchResult.load(tmp_path / f"ab-{safe}-{label}-run{n}.json")
            for label in ("tiny", "x", "b")
            for n in (1, 2)
        }
        by_start = sorted(runs.items(), key=lambda kv: kv[1].start.started)  # type: ignore[union-attr]
        assert [label for (label, _n), _r in by_start] == ["tiny", "x", "b", "tiny", "x", "b"]
        assert [r.artifact.name for _k, r in by_start] == ["tiny.litertlm", "x.litertlm", "b.litertlm"] * 2
        published = int((lab.phones[i].power_dir / "capacity").read_text())  # the level now, after every run
        levels = []
        for (label, _n), r in by_start:
            start = r.start
            assert not isinstance(start, type(msgspec.UNSET))
            assert start.temperature_c == celsius  # what this phone's gauge said, not the other's
            assert start.battery_level_pct is not None and published <= start.battery_level_pct <= 80
            levels.append(start.battery_level_pct)
            assert r.device.serial == lab.name(i)
            if label == "x":
                assert r.exit_code() == 7 and not r.complete  # the runner could not load it
            else:  # the failing artifact's runs between them changed nothing for A's and B's
                assert r.complete and not r.degenerate and r.summary.decode_tokens_per_s, r.validity
            codes.append(r.exit_code())
        assert levels == sorted(levels, reverse=True)  # the battery only drains over the campaign
        # The main file of each artifact carries the aggregate of its two runs.
        main = BenchResult.load(tmp_path / f"ab-{safe}-tiny.json")
        assert main.aggregate is not None and main.aggregate["decode_tokens_per_s"].n == 2
    assert 7 in codes and proc.returncode == max(codes) == 7, proc.stderr  # the worst exit code wins


@pytest.mark.slow
def test_a_campaign_folder_has_a_result_per_run_and_report_draws_every_device_and_artifact(
    lab: Lab, int4_result: ConvertResult, tmp_path: Path
) -> None:
    a = int4_result.artifact.path
    b = tmp_path / "b.litertlm"
    shutil.copyfile(a, b)
    shutil.copyfile(manifest_path(a), manifest_path(b))
    folder = tmp_path / "campaign"  # no extension: a folder
    args = ["battery-bench", *lab.servers(), "--device", lab.name(1), "--device", lab.name(3)]
    args += ["--runner", str(lab.runner), "--workload", str(small_workload(tmp_path, 1))]
    args += ["--baseline-s", "0.3", "--sample-s", "0.1", "--no-cooldown", "-o", str(folder)]
    proc = run_cli(*args, str(a), str(b), env=lab.env)
    # 6: a 0.3 s baseline on a loaded machine can leave a simulated battery figure void; the
    # runs, their files and the page are this test's subject, and they stand either way.
    assert proc.returncode in (0, 6), proc.stderr
    names = [lab.name(1), lab.name(3)]
    record = json.loads((folder / "campaign.json").read_text())
    assert [x["label"] for x in record["artifacts"]] == ["tiny", "b"]
    cells = {(c["device"], c["artifact"]): c for c in record["cells"]}
    assert set(cells) == {(n, label) for n in names for label in ("tiny", "b")}
    files = sorted(p.name for p in folder.glob("*.json"))
    expected = [f"{re.sub(r'[^0-9A-Za-z._-]+', '_', n)}-{label}.json" for n in names for label in ("tiny", "b")]
    assert files == sorted([*expected, "campaign.json"])  # one result file per run, nothing else
    for (name, label), cell in cells.items():
        result = BenchResult.load(folder / cell["result"])
        assert result.device.serial == name and result.artifact.name == ("b.litertlm" if label == "b" else a.name)
        # 6: under load the simulated battery may void a short baseline; the folder is the subject.
        assert cell["exit_code"] == result.exit_code() in (0, 6) and cell["runs"] == [cell["result"]]
        assert result.complete
    report = run_cli("report", str(folder))
    assert report.returncode == 0, report.stderr
    decode = report.stdout.split("### Decode (tok/s)\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert decode[0] == "| device | tiny | b | b ÷ tiny |"
    assert sorted(row.split(" | ")[0].removeprefix("| ") for row in decode[2:]) == sorted(names)
    for row in decode[2:]:
        cols = row.split(" | ")
        device = cols[0].removeprefix("| ")
        for col, label in ((cols[1], "tiny"), (cols[2], "b")):
            # A run the simulated battery voided (exit 6, above) keeps its speed, marked with its exit.
            mark = " (exit 6)" if cells[(device, label)]["exit_code"] == 6 else ""
            assert re.fullmatch(rf"[0-9.]+ tok/s \(this computer's CPU\){re.escape(mark)}", col), (col, mark)
        assert cols[3].endswith("× |")
    battery = report.stdout.split("### Battery per 25 conversations (%)\n\n", 1)[1].split("\n\n", 1)[0]
    assert battery.count("(simulated)") == 4 and "this computer's CPU" not in battery
    page = (folder / "report.html").read_text()
    for cell in cells.values():
        run_page = Path(cell["result"]).with_suffix(".html").name
        assert f'<a href="{run_page}">result</a>' in page and (folder / run_page).is_file()
