"""Shared fixtures: tiny models are built here (random weights), never downloaded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from edgekit.convert import ConvertConfig, ConvertResult, convert
from edgekit.convert.example import RANDOM_WEIGHTS_MIN_AGREEMENT
from edgekit.device.direct import DirectAdbDevice
from edgekit.testing.plugin import EmulatedDevice

REPO = Path(__file__).resolve().parent.parent
CHAT25 = REPO / "android_harness" / "workloads" / "chat-25.jsonl"

# Real-phone tests are collected only when a phone and its runner are named.
if not (os.environ.get("EDGEKIT_TEST_DEVICE") and os.environ.get("EDGEKIT_TEST_RUNNER")):
    collect_ignore_glob = ["device/*"]


def pytest_configure(config: pytest.Config) -> None:
    """Logs and caches go to a per-run temp folder, never the user's; no model hub is asked
    for anything (tiny models are built here, the real one comes from a wheel)."""
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="edgekit-test-cache-")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # A shell starts a background job (`.ci/run &`, nohup) with SIGINT ignored, and every
    # process inherits that: Python then installs no KeyboardInterrupt handler, and the
    # Ctrl-C tests' commands ignore their SIGINT. Tests run with Ctrl-C as a terminal has it.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The per-run cache folder goes when the run ends: a suite run leaves nothing in /tmp."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if Path(cache).name.startswith("edgekit-test-cache-"):
        shutil.rmtree(cache, ignore_errors=True)


SYSTEM_DEPS = REPO / "tests" / "system-deps.txt"


def system_deps() -> dict[str, str]:
    """The test-only system tools (command -> Debian package), from tests/system-deps.txt."""
    deps = {}
    for line in SYSTEM_DEPS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            command, package = line.split()[:2]
            deps[command] = package
    return deps


def require_tool(command: str) -> str:
    """The path of a test-only system tool; fails the test (no skip) with the command that installs it."""
    package = system_deps()[command]  # KeyError: declare it in tests/system-deps.txt first
    path = shutil.which(command)
    if path is None:
        pytest.fail(
            f"{command} is not installed; this test needs it: `sudo apt-get install -y {package}` "
            "(or run scripts/bootstrap as root)",
            pytrace=False,
        )
    return path


@pytest.fixture(autouse=True)
def _emulator_shell_is_mksh(request: pytest.FixtureRequest) -> None:
    """The device emulator runs commands with mksh when it can (else /bin/sh): the tests
    that start one require it, so they test what a phone runs."""
    if {"emulated_device", "host_abi_device", "adb_home"} & set(request.fixturenames):
        require_tool("mksh")


T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, what: str, timeout_s: float = 300) -> T:
    """Poll `condition` until it returns something truthy and return that. The deadline is
    generous and only turns a hang into a failure naming `what`: never a timing assert."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(0.05)
    return value


_LLAMA_BUILD: dict[str, subprocess.Popen[bytes]] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    """When the session will need llama.cpp, start its build at once, in the background: it
    takes minutes of CPU while the tests before the first llama.cpp one mostly wait on
    emulated phones (the llama_cpp_bin fixture waits for it)."""
    if any("llama_cpp_bin" in getattr(item, "fixturenames", ()) for item in session.items):
        # Its output is not kept: a failed build fails again in the fixture, which shows why.
        _LLAMA_BUILD["proc"] = subprocess.Popen(
            [str(REPO / "scripts" / "build-llama-cpp")],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A background build no test waited for (a session cut short) does not outlive it."""
    proc = _LLAMA_BUILD.pop("proc", None)
    if proc is not None and proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture(scope="session")
def llama_cpp_bin() -> Path:
    """The bin dir of llama.cpp 0c1e570 as scripts/build-llama-cpp prints it (LLAMA_CPP_CPU
    and JOBS pass through): instant when built, else it builds (minutes). A failed build
    fails the test with the script's stderr tail, never a skip."""
    require_tool("g++")
    if "proc" in _LLAMA_BUILD:  # the session's background build (its result is checked below)
        _LLAMA_BUILD.pop("proc").wait(timeout=3600)
    script = REPO / "scripts" / "build-llama-cpp"
    proc = subprocess.run([str(script)], cwd=REPO, capture_output=True, text=True, timeout=3600)
    tail = "\n".join(proc.stderr.splitlines()[-30:])
    if proc.returncode != 0:
        pytest.fail(f"{script} failed (exit {proc.returncode}):\n{tail}", pytrace=False)
    lines = proc.stdout.split()
    bin_dir = Path(lines[-1]) if lines else None
    if bin_dir is None or not (bin_dir / "llama-cli").is_file():
        pytest.fail(f"{script} printed {proc.stdout!r}, not a bin dir with llama-cli:\n{tail}", pytrace=False)
    return bin_dir


@pytest.fixture(scope="session")
def tiny_gguf(llama_cpp_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Gemma 3 example model as a Q4_0 GGUF (random weights), made once per session
    by llama.cpp's converter and that build's llama-quantize."""
    from edgekit.testing.gguf_model import make_tiny_gemma3_gguf

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLAMA_CPP_BIN", str(llama_cpp_bin))
        return make_tiny_gemma3_gguf(tmp_path_factory.mktemp("tiny-gguf") / "tiny-q4_0.gguf", "q4_0")


@pytest.fixture(scope="session")
def int4_result(tiny_gemma3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConvertResult]:
    """The tiny example model converted to INT4 .litertlm once per session (with fidelity check)."""
    out = tmp_path_factory.mktemp("int4") / "tiny.litertlm"
    yield convert(tiny_gemma3_dir, ConvertConfig(output=out, min_agreement=RANDOM_WEIGHTS_MIN_AGREEMENT))


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `python -m edgekit ARGS` in a fresh process with an isolated HOME and cache."""
    home = Path(os.environ.get("XDG_CACHE_HOME", "/tmp")) / "home"
    home.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k != "EDGEKIT_DEBUG"}
    # PYTHONFAULTHANDLER: a native crash in the child prints every thread's Python stack.
    full_env = {**base, "HOME": str(home), "COLUMNS": "200", "PYTHONFAULTHANDLER": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def small_workload(tmp_path: Path, n: int = 3, turns: list[list[str]] | None = None) -> Path:
    """chat-25's header with its first `n` conversations (or conversations of `turns`), as a workload file."""
    lines = CHAT25.read_text().splitlines()
    if turns is not None:
        body = [json.dumps({"id": f"c{i}", "turns": t}) for i, t in enumerate(turns)]
    else:
        body = lines[1 : n + 1]
    f = tmp_path / "workload.jsonl"
    f.write_text("\n".join([lines[0], *body]) + "\n")
    return f


def harness_run(
    tmp_path: Path, runner: str, *, protocol: str, turns: list[list[str]], answer_cap_bytes: int = 600
) -> tuple[Path, Path]:
    """A run folder for android_harness/driver.sh, written by `run_folder.prepare` on a
    LocalDevice rooted in tmp_path as edgekit writes it on a phone: the harness copied in,
    `runner` (a script, shebang included) as the runner, a model file it need not read, no
    baseline and no battery. (the run folder, the runner's folder); start the driver as
    `SHELL ROOT/harness/driver.sh RUN_DIR` (the run folder's grandparent is ROOT)."""
    from edgekit.bench import run_folder
    from edgekit.bench.workload import load_workload
    from edgekit.device.local import LocalDevice
    from edgekit.probe import Protocol
    from tests.typed_results import run_meta

    device = LocalDevice(root=tmp_path / "root")
    root = Path(device.work_root)
    shutil.copytree(REPO / "android_harness", root / "harness")
    runner_dir = root / "runners" / "standin"
    runner_dir.mkdir(parents=True)
    (runner_dir / "runner").write_text(runner)
    (runner_dir / "runner").chmod(0o755)
    model = root / "models" / "m" / "model.litertlm"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"not read by the stand-in")
    paths = run_folder.run_paths(device, "run", str(root / "harness"))
    run_folder.prepare(
        device,
        paths,
        runner=str(runner_dir / "runner"),
        model=str(model),
        workload=load_workload(small_workload(tmp_path, turns=turns)),
        flags=[],
        protocol=Protocol(protocol),
        turn_timeout_s=120,
        answer_cap_words=100,
        answer_cap_bytes=answer_cap_bytes,
        sample_period_s=1.0,
        baseline_s=0.0,
        meta=run_meta(),
        power_env={"DEVICE_ROOT": str(tmp_path / "no-battery")},
    )
    return Path(paths.run_dir), runner_dir


@pytest.fixture
def device(emulated_device: EmulatedDevice) -> Iterator[DirectAdbDevice]:
    """The emulated phone over the direct transport (adb-shell), closed afterwards."""
    host, port = emulated_device.serial.rsplit(":", 1)
    d = DirectAdbDevice(host, int(port), connect_timeout_s=5, auth_timeout_s=2)
    yield d
    d.close()
