"""Put a model, its on-device runner and edgekit's harness on a device: verified, idempotent.

Layout under the device's work root (`/data/local/tmp/edgekit` on a phone):

    models/<sha256>/model.litertlm
    runners/<sha256>/<runner binary> + its .so files + probe.json
    harness/<sha256 of the harness files>/...
    deploys.log                       one line per deploy: time, model, runner, harness

Each file is pushed to a `.part` name, its sha256 checked on the device (`sha256sum`),
then renamed: a half-pushed file never has a final name, and a file that already has its
final name and hash is not pushed again. A smoke run then answers one prompt; the prompt
travels to the device as a file, never on a command line.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import re
import secrets
import shlex
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit._data import data_dir, user_cache_dir
from edgekit._files import atomic_write
from edgekit.artifact import Artifact, sha256_file
from edgekit.device import parsers
from edgekit.device.base import Device, DeviceFacts
from edgekit.device.local import LocalDevice
from edgekit.errors import DeviceError, EdgekitError, InputError
from edgekit.probe import MULTI_TURN, RunnerProbe, chat_flags, probe_runner

RUNNER_NAME = "litert_lm_main"
MODEL_NAME = "model.litertlm"
SMOKE_PROMPT = "Say hello in five words."
_SPACE_MARGIN = 16 * 1024 * 1024
_ELF_MACHINES = {183: "arm64-v8a", 62: "x86_64", 40: "armeabi-v7a", 3: "x86"}

PushProgress = Callable[[str, int, int], None]
"""`progress(label, bytes_done, bytes_total)`."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeployConfig:
    """How to deploy: the runner (else EDGEKIT_RUNNER, else the one cached last time) and the smoke run."""

    runner: Path | None = None
    smoke: bool = True
    smoke_prompt: str = SMOKE_PROMPT
    smoke_max_tokens: int = 16
    smoke_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.smoke_max_tokens < 1:
            raise InputError(f"smoke max tokens must be at least 1, got {self.smoke_max_tokens}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Placed:
    """One file or folder on the device: where, its sha256, whether this deploy sent it."""

    remote: str
    sha256: str
    size_bytes: int
    pushed: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class SmokeResult:
    """The smoke run's answer and the runner's own figures."""

    answer: str
    prefill_tokens: int | None
    decode_tokens: int | None
    decode_tokens_per_s: float | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeployResult:
    """What one deploy did on one device."""

    serial: str
    facts: DeviceFacts
    model: Placed
    runner: Placed | None
    harness: Placed
    provenance: str
    smoke: SmokeResult | None
    bytes_pushed: int
    notes: tuple[str, ...]
    probe: dict[str, Any] | None = None
    shell: dict[str, bool] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for --json)."""
        return dataclasses.asdict(self)


def runner_cache_dir() -> Path:
    """Where edgekit keeps the on-device runner the user supplied."""
    return user_cache_dir() / "runners"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunnerFiles:
    """The runner binary and the shared libraries shipped beside it (upstream's
    prebuilt/android_arm64/ folder); `sha256` addresses them together on the device."""

    binary: Path
    libraries: tuple[Path, ...]
    sha256: str


def _runner_files(binary: Path, name: str | None = None) -> RunnerFiles:
    libs = tuple(sorted(p for p in binary.parent.glob("*.so") if p.is_file()))
    if not libs:
        return RunnerFiles(binary=binary, libraries=(), sha256=sha256_file(binary))
    files = {name or binary.name: binary, **{p.name: p for p in libs}}
    return RunnerFiles(binary=binary, libraries=libs, sha256=_tree_sha256(files))


def _pick_binary(folder: Path) -> Path:
    candidates = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".so") and os.access(p, os.X_OK)
    )
    if not candidates:
        raise InputError(
            f"runner folder {folder} holds no executable: pass LiteRT-LM's prebuilt/android_arm64/ folder "
            f"or the runner binary itself",
            path=folder,
        )
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise InputError(
            f"runner folder {folder} holds several executables ({names}): pass the one to use, "
            f"e.g. --runner {candidates[0]} (its .so files are shipped with it)",
            path=folder,
        )
    return candidates[0]


def resolve_runner(given: Path | None) -> RunnerFiles | None:
    """The runner to push: `given` (a binary, or its folder), else $EDGEKIT_RUNNER, else
    the one cached by an earlier deploy. The binary and the `.so` files beside it are
    copied into the cache (content-addressed) and remembered.
    """
    if given is None and os.environ.get("EDGEKIT_RUNNER"):
        given = Path(os.environ["EDGEKIT_RUNNER"])
    cache = runner_cache_dir()
    if given is None:
        last = cache / "last"
        if last.is_file():
            cached = Path(last.read_text().strip())
            if cached.is_file():
                return _runner_files(cached)
        return None
    if given.is_dir():
        given = _pick_binary(given)
    if not given.is_file():
        raise InputError(
            f"runner {given} does not exist: pass LiteRT-LM's runner for android_arm64 or its folder", path=given
        )
    name = given.name if re.fullmatch(r"[A-Za-z0-9._-]+", given.name) else RUNNER_NAME
    found = _runner_files(given, name)
    folder = cache / found.sha256
    cached = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    for src, dst in [(given, cached), *[(lib, folder / lib.name) for lib in found.libraries]]:
        if not dst.is_file():
            with atomic_write(dst) as tmp:
                shutil.copyfile(src, tmp)
                tmp.chmod(0o755)
    (cache / "last").write_text(str(cached) + "\n")
    return RunnerFiles(
        binary=cached, libraries=tuple(folder / lib.name for lib in found.libraries), sha256=found.sha256
    )


def elf_abi(path: Path) -> str | None:
    """The Android ABI an ELF binary is built for, or None if `path` is not ELF."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return _ELF_MACHINES.get(machine, f"elf-machine-{machine}")


# Libraries every Android app process may link (the NDK's stable system libraries): not
# expected beside the runner.
_SYSTEM_LIBS = {
    "libc.so",
    "libm.so",
    "libdl.so",
    "liblog.so",
    "libandroid.so",
    "libz.so",
    "libEGL.so",
    "libGLESv2.so",
    "libGLESv3.so",
    "libvulkan.so",
    "libnativewindow.so",
    "libmediandk.so",
    "libneuralnetworks.so",
    "libjnigraphics.so",
    "libsync.so",
    "libOpenSLES.so",
    "libaaudio.so",
    "libbinder_ndk.so",
    "libstdc++.so",
}


def elf_needed(path: Path) -> tuple[str, ...] | None:
    """The DT_NEEDED libraries of a 64-bit little-endian ELF (what bionic's linker will look
    for), or None if `path` is not one or has no dynamic section."""
    import struct

    data = path.read_bytes()
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = []
    for i in range(shnum):
        off = shoff + i * shentsize
        if off + 64 > len(data):
            return None
        _name, sh_type, _flags, _addr, sh_offset, sh_size, sh_link = struct.unpack_from("<IIQQQQI", data, off)
        sections.append((sh_type, sh_offset, sh_size, sh_link))
    for sh_type, offset, size, link in sections:
        if sh_type != 6 or link >= len(sections):  # SHT_DYNAMIC; its sh_link is the string table
            continue
        strtab = sections[link][1]
        needed = []
        for entry in range(offset, offset + size - 15, 16):
            tag, value = struct.unpack_from("<qQ", data, entry)
            if tag == 0:  # DT_NULL
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", strtab + value)
                needed.append(data[strtab + value : end].decode(errors="replace"))
        return tuple(needed)
    return None


def harness_files() -> dict[str, Path]:
    """The device-side harness files (relative name -> local path), from `android_harness/`."""
    root = data_dir("android_harness")
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
    }


def _tree_sha256(files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for name, path in sorted(files.items()):
        digest.update(f"{name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def _remote_sha256(device: Device, remote: str) -> str | None:
    result = device.shell(["sha256sum", remote], check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return result.stdout.split()[0]


def _place_file(
    device: Device,
    local: Path,
    remote: str,
    sha: str,
    *,
    executable: bool,
    label: str,
    progress: PushProgress | None,
    already_there: bool,
) -> Placed:
    size = local.stat().st_size
    if already_there:
        return Placed(remote=remote, sha256=sha, size_bytes=size, pushed=False)
    part = remote + ".part"
    parent = remote.rsplit("/", 1)[0]
    device.shell(["mkdir", "-p", parent])
    device.shell(["rm", "-f", part, remote])
    device.push(local, part, progress=None if progress is None else lambda done, total: progress(label, done, total))
    got = _remote_sha256(device, part)
    if got != sha:
        device.shell(["rm", "-f", part], check=False)
        raise DeviceError(
            f"{device.serial}: {label} arrived corrupted (sha256 {got or 'unreadable'}, "
            f"expected {sha[:12]}…): run again",
            serial=device.serial,
        )
    if executable:
        device.shell(["chmod", "755", part])
    device.shell(["mv", "-f", part, remote])
    return Placed(remote=remote, sha256=sha, size_bytes=size, pushed=True)


def _place_harness(device: Device, root: str, progress: PushProgress | None) -> Placed:
    files = harness_files()
    sha = _tree_sha256(files)
    final = f"{root}/harness/{sha}"
    size = sum(p.stat().st_size for p in files.values())
    if device.shell(["test", "-d", final], check=False).returncode == 0:
        return Placed(remote=final, sha256=sha, size_bytes=size, pushed=False)
    part = final + ".part"
    device.shell(["rm", "-rf", part])
    for name, path in files.items():
        remote = f"{part}/{name}"
        device.shell(["mkdir", "-p", remote.rsplit("/", 1)[0]])
        device.push(path, remote)
        if _remote_sha256(device, remote) != sha256_file(path):
            device.shell(["rm", "-rf", part], check=False)
            raise DeviceError(
                f"{device.serial}: harness file {name} arrived corrupted: run again", serial=device.serial
            )
        if path.suffix == ".sh":
            device.shell(["chmod", "755", remote])
    device.shell(["mv", part, final])
    if progress is not None:
        progress("harness", size, size)
    return Placed(remote=final, sha256=sha, size_bytes=size, pushed=True)


def check_shell(device: Device) -> dict[str, bool]:
    """What the harness needs from the device shell, tried as the shell user in the work
    root (SELinux lets `shell` create FIFOs in /data/local/tmp, shell_data_file): mkfifo,
    setsid, sha256sum, and a readable /sys/class/power_supply. DeviceError for what has
    no fallback (mkfifo, sha256sum)."""
    root = shlex.quote(device.work_root)
    script = (
        f'mkdir -p {root}/tmp; f={root}/tmp/.probe-fifo.$$; rm -f "$f"; '
        'if mkfifo "$f" 2>/dev/null && [ -p "$f" ]; then echo mkfifo=1; else echo mkfifo=0; fi; rm -f "$f"; '
        "for c in setsid sha256sum; do if command -v $c >/dev/null 2>&1; then echo $c=1; else echo $c=0; fi; done; "
        "if ls /sys/class/power_supply/ >/dev/null 2>&1; then echo power_supply=1; else echo power_supply=0; fi"
    )
    out = device.script(script, check=False).stdout
    found = {k: v == "1" for k, _, v in (line.strip().partition("=") for line in out.splitlines()) if k}
    facts = {k: found.get(k, False) for k in ("mkfifo", "setsid", "sha256sum", "power_supply")}
    for tool, why in (("mkfifo", "the harness feeds the runner through FIFOs"), ("sha256sum", "deploy verifies")):
        if not facts[tool]:
            raise DeviceError(
                f"{device.serial}: the device shell cannot run {tool} in {device.work_root} ({why}): "
                f"edgekit needs Android 7+ with toybox",
                serial=device.serial,
            )
    return facts


def _runner_env(runner_remote: str) -> str:
    folder = runner_remote.rsplit("/", 1)[0]
    return f"cd {shlex.quote(folder)} && LD_LIBRARY_PATH={shlex.quote(folder)} {shlex.quote(runner_remote)}"


def smoke_run(
    device: Device, model_remote: str, runner_remote: str | None, config: DeployConfig, probe: RunnerProbe | None = None
) -> SmokeResult:
    """Answer one prompt with the deployed model through the probed protocol; DeviceError
    (quoting the runner) if it cannot."""
    if isinstance(device, LocalDevice) or runner_remote is None or probe is None:
        from edgekit.engine import run_prompt

        try:
            run = run_prompt(Path(model_remote), config.smoke_prompt, max_output_tokens=config.smoke_max_tokens)
        except EdgekitError as exc:
            raise DeviceError(f"{device.serial}: the model does not load: {exc}", serial=device.serial) from exc
        return SmokeResult(
            answer=run.text,
            prefill_tokens=run.prefill_tokens,
            decode_tokens=run.decode_tokens,
            decode_tokens_per_s=run.decode_tokens_per_s,
        )
    root = model_remote.rsplit("/models/", 1)[0]
    prompt_remote = f"{root}/tmp/smoke-{secrets.token_hex(6)}.txt"
    flags = chat_flags(
        probe, backend="cpu", threads=None, max_num_tokens=None, max_output_tokens=config.smoke_max_tokens
    )
    prompt = " ".join(config.smoke_prompt.splitlines())
    with tempfile.TemporaryDirectory(prefix="edgekit-smoke-") as tmp:
        prompt_file = Path(tmp) / "prompt.txt"
        # Multi-turn: one user turn, then the empty line that ends the input; one-shot: the prompt file.
        prompt_file.write_text(prompt + "\n\n" if probe.protocol == MULTI_TURN else prompt)
        device.shell(["mkdir", "-p", f"{root}/tmp"])
        device.push(prompt_file, prompt_remote)
    argv = [f"--model_path={model_remote}", *flags.flags]
    if probe.protocol == MULTI_TURN:
        command = f"{_runner_env(runner_remote)} {shlex.join(argv)} < {shlex.quote(prompt_remote)}"
    else:
        argv.append(f"--input_prompt_file={prompt_remote}")
        command = f"{_runner_env(runner_remote)} {shlex.join(argv)} < /dev/null"
    try:
        result = device.script(command, timeout_s=config.smoke_timeout_s, check=False)
    finally:
        device.shell(["rm", "-f", prompt_remote], check=False)
    stream = result.stderr if probe.benchmark_stream == "stderr" else result.stdout
    info = parsers.parse_benchmark_info(stream) or parsers.parse_benchmark_info(result.stdout + result.stderr)
    if probe.protocol == MULTI_TURN:
        answers = parsers.split_multi_turn_answers(result.stdout)
        answer = answers[0] if answers else ""
    else:
        answer = parsers.one_shot_answer(result.stdout, prompt)
    if result.returncode != 0 or info is None or not info.decode:
        detail = _tail_lines(result.stderr or result.stdout)
        raise DeviceError(
            f"{device.serial}: the model does not load or run with the runner (exit {result.returncode}"
            f"{signal_name(result.returncode)}): {detail or 'no BenchmarkInfo printed'}",
            serial=device.serial,
            returncode=result.returncode,
            stderr=result.stderr,
        )
    return SmokeResult(
        answer=answer,
        prefill_tokens=info.prefill[0].tokens if info.prefill else None,
        decode_tokens=info.decode[0].tokens,
        decode_tokens_per_s=info.decode[0].tokens_per_s,
    )


def _tail_lines(text: str, n: int = 3) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines()[-n:] if line.strip())


def signal_name(returncode: int) -> str:
    """`, SIGSEGV` for a shell exit status 139 etc.; 137 (SIGKILL) says "killed, likely out of memory"."""
    if returncode == 137:
        return ", SIGKILL: killed, likely out of memory (the low-memory killer)"
    if 128 < returncode < 160:
        import signal

        try:
            return f", {signal.Signals(returncode - 128).name}"
        except ValueError:
            return f", signal {returncode - 128}"
    return ""


def deploy(
    device: Device,
    artifact_path: Path | str,
    config: DeployConfig | None = None,
    *,
    progress: PushProgress | None = None,
) -> DeployResult:
    """Deploy `artifact_path` to `device` (see the module docstring); returns what was done.

    Raises InputError for a bad artifact or runner, DeviceError for device trouble (no
    space, wrong ABI, lost connection, a model that does not run).
    """
    config = config or DeployConfig()
    notes: list[str] = []
    artifact = Artifact.load(artifact_path)
    if artifact.manifest is not None:
        sha = artifact.verify()
        provenance = "manifest"
    else:
        sha = sha256_file(artifact.path)
        provenance = "unknown"
        notes.append("no manifest beside the artifact: provenance unknown (sha256 computed here)")
    is_local = isinstance(device, LocalDevice)
    runner = None if is_local else resolve_runner(config.runner)
    facts = device.facts()
    if not is_local:
        if runner is None:
            raise InputError(
                "no on-device runner: pass --runner PATH (LiteRT-LM's litert_lm_advanced_main or litert_lm_main "
                "for android_arm64, or its prebuilt/android_arm64/ folder) or set EDGEKIT_RUNNER; edgekit remembers it"
            )
        abi = elf_abi(runner.binary)
        shipped = {lib.name for lib in runner.libraries}
        unshipped = [n for n in elf_needed(runner.binary) or () if n not in shipped and n not in _SYSTEM_LIBS]
        if unshipped:
            notes.append(
                f"runner {runner.binary.name} needs {', '.join(unshipped)}, not beside it: if the phone lacks "
                f"them it will not start (pass its prebuilt/android_arm64/ folder)"
            )
        if abi is None:
            notes.append(f"runner {runner.binary.name} is not an ELF binary (a script?): it is run as it is")
        elif abi not in facts.abis:
            raise InputError(
                f"the runner is built for {abi} but {device.serial} runs {', '.join(facts.abis) or 'an unknown ABI'}: "
                f"use the litert_lm_main built for {facts.abis[0] if facts.abis else 'the phone'}"
            )

    root = device.work_root
    model_remote = f"{root}/models/{sha}/{MODEL_NAME}"
    runner_dir = f"{root}/runners/{runner.sha256}" if runner is not None else None
    runner_remote = f"{runner_dir}/{runner.binary.name}" if runner is not None else None
    runner_items: list[tuple[Path, str, str]] = []  # local, remote, sha256
    if runner is not None and runner_dir is not None and runner_remote is not None:
        runner_items.append((runner.binary, runner_remote, sha256_file(runner.binary)))
        runner_items += [(lib, f"{runner_dir}/{lib.name}", sha256_file(lib)) for lib in runner.libraries]

    # One sha256sum per file on the device: it decides both the space needed and what to send.
    model_there = _remote_sha256(device, model_remote) == sha
    runner_there = [_remote_sha256(device, remote) == h for _, remote, h in runner_items]
    need = (0 if model_there else artifact.path.stat().st_size) + sum(
        local.stat().st_size for (local, _, _), there in zip(runner_items, runner_there, strict=True) if not there
    )
    if facts.free_bytes is not None and need + _SPACE_MARGIN > facts.free_bytes:
        raise DeviceError(
            f"{device.serial}: not enough space in {root.rsplit('/', 1)[0]}: need {need / 1e6:.0f} MB, "
            f"{facts.free_bytes / 1e6:.0f} MB free; run `edgekit clean --device {device.serial}` or free space",
            serial=device.serial,
        )
    shell_facts = None if is_local else check_shell(device)
    if shell_facts is not None:
        if not shell_facts["setsid"]:
            notes.append("the device shell has no setsid: the run is started in the background with SIGHUP ignored")
        if not shell_facts["power_supply"]:
            notes.append("/sys/class/power_supply is not readable here: battery-bench measures speed only")

    model = _place_file(
        device,
        artifact.path,
        model_remote,
        sha,
        executable=False,
        label="model",
        progress=progress,
        already_there=model_there,
    )
    runner_placed = None
    probe = None
    if runner is not None and runner_remote is not None and runner_dir is not None:
        for (local, remote, h), there in zip(runner_items, runner_there, strict=True):
            _place_file(
                device,
                local,
                remote,
                h,
                executable=True,
                label="runner" if local == runner.binary else local.name,
                progress=progress,
                already_there=there,
            )
        runner_placed = Placed(
            remote=runner_remote,
            sha256=runner.sha256,
            size_bytes=sum(local.stat().st_size for local, _, _ in runner_items),
            pushed=not all(runner_there),
        )
        probe = probe_runner(
            device,
            runner_dir,
            runner.binary.name,
            tuple(lib.name for lib in runner.libraries),
            elf_needed(runner.binary),
        )
    harness = _place_harness(device, root, progress)
    smoke = smoke_run(device, model_remote, runner_remote, config, probe) if config.smoke else None
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{stamp} {sha} {runner.sha256 if runner else '-'} {harness.sha256}"
    device.script(f"echo {shlex.quote(line)} >> {shlex.quote(root + '/deploys.log')}")
    pushed = sum(p.size_bytes for p in (model, runner_placed, harness) if p is not None and p.pushed)
    return DeployResult(
        serial=device.serial,
        facts=facts,
        model=model,
        runner=runner_placed,
        harness=harness,
        provenance=provenance,
        smoke=smoke,
        bytes_pushed=pushed,
        notes=tuple(notes),
        probe=None if probe is None else probe.to_dict(),
        shell=shell_facts,
    )


def clean(device: Device, *, everything: bool) -> list[str]:
    """Remove edgekit's files from `device`: all of them, or all but the newest deploy's.

    Returns the device paths removed.
    """
    root = device.work_root
    if everything:
        if device.shell(["test", "-e", root], check=False).returncode == 0:
            device.shell(["rm", "-rf", root])
            return [root]
        return []
    log = device.shell(["cat", f"{root}/deploys.log"], check=False).stdout.strip().splitlines()
    keep: set[str] = set()
    if log:
        _stamp, model, runner, harness = (log[-1].split() + ["-"] * 4)[:4]
        keep = {f"models/{model}", f"runners/{runner}", f"harness/{harness}"}
    removed = []
    for kind in ("models", "runners", "harness", "tmp"):
        listing = device.shell(["ls", "-1", f"{root}/{kind}"], check=False)
        if listing.returncode != 0:
            continue
        for name in listing.stdout.split():
            if f"{kind}/{name}" not in keep:
                path = f"{root}/{kind}/{name}"
                device.shell(["rm", "-rf", path])
                removed.append(path)
    if log:
        device.script(f"echo {shlex.quote(log[-1])} > {shlex.quote(root + '/deploys.log')}")
    return removed
