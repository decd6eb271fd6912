"""Put a model, its on-device runner and edgekit's harness on a device: verified, idempotent.

Layout under the device's work root (`/data/local/tmp/edgekit` on a phone):

    models/<sha256>/model.litertlm
    runners/<sha256>/<runner binary> + its .so files + probe.json
    harness/<sha256 of the harness files>/...
    deploys.log                       one line per deploy: time, model, runner, harness

Each file is pushed to a `.part` name, its sha256 checked on the device (`sha256sum`),
then renamed: a half-pushed file never has a final name, and a file that already has its
final name and hash is not pushed again. Before anything is sent, the artifact's header
is read as LiteRT-LM's runtime reads it (edgekit.litertlm): random bytes, a text file or
an empty file are refused. A smoke run then answers one prompt (the prompt travels to the
device as a file, never on a command line); a model whose smoke run fails is removed from
the device and not logged. The phone's greedy answer is compared with this computer's CPU
engine's on the same prompt: a backend can run fast and answer garbage (LiteRT-LM issue
#3280, Gemma 3 270M on GPU emitting only `<pad>`), and a difference is a warning naming
the first differing token.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import os
import posixpath
import re
import secrets
import shlex
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit import answers, llama_cpp
from edgekit._data import data_dir, user_cache_dir
from edgekit._files import atomic_write
from edgekit.artifact import Artifact, sha256_file
from edgekit.convert.gguf import is_gguf
from edgekit.device import parsers
from edgekit.device.base import Device, DeviceFacts, Execution, ShellResult
from edgekit.errors import DeviceBusy, DeviceError, EdgekitError, InputError
from edgekit.litertlm import read_header
from edgekit.probe import LITERT_LM, LLAMA_CPP, Backend, Protocol, RunnerProbe, chat_flags, probe_runner

RUNNER_NAME = "litert_lm_main"
MODEL_NAME = "model.litertlm"
GGUF_MODEL_NAME = "model.gguf"
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


class HostCheck(str, enum.Enum):
    """The smoke answer against this computer's CPU engine on the same prompt."""

    SAME = "same"
    DIFFERS = "differs"
    UNAVAILABLE = "unavailable"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SmokeResult:
    """The smoke run's answer and the runner's own figures; `host_check` None where the
    device runs the model with this computer's engine itself (nothing to compare)."""

    answer: str
    prefill_tokens: int | None
    decode_tokens: int | None
    decode_tokens_per_s: float | None
    host_check: HostCheck | None = None
    host_answer: str | None = None


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
    probe: RunnerProbe | None = None
    """What the deployed runner speaks (None: no runner, e.g. `local`); probe.json beside it on the device."""
    shell: dict[str, bool] | None = None


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
    others: tuple[Path, ...] = ()
    """The folder's other programs (a llama.cpp build's llama-server, llama-bench…): pushed
    too, and probed on the phone after `binary` until one is a runner edgekit can drive."""


def _is_library(path: Path) -> bool:
    """A shared library, not a program: an ELF without a program interpreter (PT_INTERP;
    a PIE executable has one), or by name (libX.so, libX.so.0…) for what is not ELF."""
    import struct

    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) == 64 and head[:4] == b"\x7fELF" and head[4] == 2 and head[5] == 1:
            (phoff,) = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            return not any(
                struct.unpack_from("<I", table, i * phentsize)[0] == 3  # PT_INTERP
                for i in range(phnum)
                if (i + 1) * phentsize <= len(table)
            )
    return re.fullmatch(r"lib.*\.so(\.[0-9.]+)?", path.name) is not None


def _libraries(folder: Path) -> tuple[Path, ...]:
    """The shared libraries beside a runner: libX.so and versioned libX.so.0 names (a
    llama.cpp build links those), a symbolic link shipped as the file it points to."""
    return tuple(sorted(p for p in folder.iterdir() if p.is_file() and re.fullmatch(r".+\.so(\.[0-9.]+)?", p.name)))


def _runner_files(binary: Path, name: str | None = None, others: tuple[Path, ...] = ()) -> RunnerFiles:
    libs = _libraries(binary.parent)
    if not libs and not others:
        return RunnerFiles(binary=binary, libraries=(), sha256=sha256_file(binary))
    files = {name or binary.name: binary, **{p.name: p for p in (*libs, *others)}}
    return RunnerFiles(binary=binary, libraries=libs, sha256=_tree_sha256(files), others=others)


def _programs(folder: Path) -> list[Path]:
    """The executables in a runner folder, its shared libraries (which may carry an execute bit) left out."""
    programs = [p for p in sorted(folder.iterdir()) if p.is_file() and os.access(p, os.X_OK) and not _is_library(p)]
    if not programs:
        raise InputError(
            f"runner folder {folder} holds no executable: pass LiteRT-LM's prebuilt/android_arm64/ folder, "
            f"llama.cpp's build folder (bin/) or the runner binary itself",
            path=folder,
        )
    return programs


def _cached_runner(path: Path) -> RunnerFiles | None:
    if path.is_file():
        return _runner_files(path)
    if path.is_dir():
        programs = _programs(path)
        return _runner_files(programs[0], others=tuple(programs[1:]))
    return None


def remember_runner(runner: RunnerFiles, runtime: str) -> None:
    """After the phone's probe: which runtime this runner runs, and that it is the last one
    of that runtime (so a campaign of a .litertlm and a .gguf finds each its own runner)."""
    cache = runner_cache_dir()
    folder = cache / runner.sha256
    if runner.binary.parent == folder:  # a runner in edgekit's cache (resolve_runner put it there)
        (folder / ".runtime").write_text(runtime + "\n")
        where = folder if runner.others else runner.binary
        (cache / f"last-{runtime}").write_text(f"{where}\n")


def resolve_runner(given: Path | None, runtime: str | None = None) -> RunnerFiles | None:
    """The runner to push: `given` (a binary, or its folder), else $EDGEKIT_RUNNER, else
    the one cached by an earlier deploy. The binary and the `.so` files beside it are
    copied into the cache (content-addressed) and remembered.

    `runtime` (LITERT_LM, LLAMA_CPP: the model's): a `given` runner the phone's probe found
    to run the other one gives way to the last runner of this runtime, where there is one;
    without `given`, the last runner of this runtime comes first."""
    if given is None and os.environ.get("EDGEKIT_RUNNER"):
        given = Path(os.environ["EDGEKIT_RUNNER"])
    cache = runner_cache_dir()
    if given is not None and runtime is not None:
        chosen = resolve_runner(given)
        assert chosen is not None
        known = cache / chosen.sha256 / ".runtime"
        if known.is_file() and known.read_text().strip() != runtime:
            own = cache / f"last-{runtime}"
            other = _cached_runner(Path(own.read_text().strip())) if own.is_file() else None
            return other or chosen
        return chosen
    if given is None:
        own = cache / f"last-{runtime}"
        if runtime is not None and own.is_file() and (found := _cached_runner(Path(own.read_text().strip()))):
            return found
        last = cache / "last"
        if last.is_file():
            return _cached_runner(Path(last.read_text().strip()))
        return None
    others: tuple[Path, ...] = ()
    if given.is_dir():
        programs = _programs(given)
        given, others = programs[0], tuple(programs[1:])
    if not given.is_file():
        raise InputError(
            f"runner {given} does not exist: pass LiteRT-LM's runner for android_arm64 or its folder", path=given
        )
    name = given.name if re.fullmatch(r"[A-Za-z0-9._-]+", given.name) else RUNNER_NAME
    found = _runner_files(given, name, others)
    folder = cache / found.sha256
    cached = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    copies = [(given, cached), *[(p, folder / p.name) for p in (*found.libraries, *found.others)]]
    for src, dst in copies:
        if not dst.is_file():
            with atomic_write(dst) as tmp:
                shutil.copyfile(src, tmp)
                tmp.chmod(0o755)
    (cache / "last").write_text(str(folder if others else cached) + "\n")
    return RunnerFiles(
        binary=cached,
        libraries=tuple(folder / lib.name for lib in found.libraries),
        sha256=found.sha256,
        others=tuple(folder / p.name for p in found.others),
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Item:
    """One file to place under the work root: `folder` (relative parts) / `name`."""

    local: Path
    folder: tuple[str, ...]
    name: str
    sha256: str
    label: str
    executable: bool
    there: bool
    """Already on the device under its final name, with this sha256."""


def _item(
    device: Device, local: Path, folder: tuple[str, ...], name: str, sha: str, *, label: str, executable: bool
) -> _Item:
    there = _remote_sha256(device, device.path(*folder, name)) == sha
    return _Item(local=local, folder=folder, name=name, sha256=sha, label=label, executable=executable, there=there)


def _place_file(device: Device, item: _Item, progress: PushProgress | None) -> Placed:
    remote = device.path(*item.folder, item.name)
    size = item.local.stat().st_size
    if item.there:
        return Placed(remote=remote, sha256=item.sha256, size_bytes=size, pushed=False)
    part = device.path(*item.folder, item.name + ".part")
    label = item.label
    device.shell(["mkdir", "-p", device.path(*item.folder)])
    device.shell(["rm", "-f", part, remote])
    device.push(
        item.local, part, progress=None if progress is None else lambda done, total: progress(label, done, total)
    )
    got = _remote_sha256(device, part)
    if got != item.sha256:
        device.shell(["rm", "-f", part], check=False)
        raise DeviceError(
            f"{device.serial}: {label} arrived corrupted (sha256 {got or 'unreadable'}, "
            f"expected {item.sha256[:12]}…): run again",
            serial=device.serial,
        )
    if item.executable:
        device.shell(["chmod", "755", part])
    device.shell(["mv", "-f", part, remote])
    return Placed(remote=remote, sha256=item.sha256, size_bytes=size, pushed=True)


def _place_harness(device: Device, progress: PushProgress | None) -> Placed:
    files = harness_files()
    sha = _tree_sha256(files)
    final = device.path("harness", sha)
    size = sum(p.stat().st_size for p in files.values())
    if device.shell(["test", "-d", final], check=False).returncode == 0:
        return Placed(remote=final, sha256=sha, size_bytes=size, pushed=False)
    part = device.path("harness", sha + ".part")
    device.shell(["rm", "-rf", part])
    for name, path in files.items():
        *sub, base = name.split("/")  # harness_files() names are POSIX relative paths
        device.shell(["mkdir", "-p", device.path("harness", sha + ".part", *sub)])
        remote = device.path("harness", sha + ".part", *sub, base)
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
    tmp = shlex.quote(device.path("tmp"))
    script = (
        f'mkdir -p {tmp}; f={tmp}/.probe-fifo.$$; rm -f "$f"; '
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


def _runner_env(runner_dir: str, runner_remote: str) -> str:
    return f"cd {shlex.quote(runner_dir)} && LD_LIBRARY_PATH={shlex.quote(runner_dir)} {shlex.quote(runner_remote)}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunnerOnDevice:
    """A deployed runner: its folder, its binary (device paths) and what the probe found."""

    folder: str
    binary: str
    probe: RunnerProbe


def smoke_run(
    device: Device,
    model_remote: str,
    config: DeployConfig,
    runner: RunnerOnDevice | None = None,
    *,
    chat_template: str | None = None,
) -> SmokeResult:
    """Answer one prompt with the deployed model: through the probed runner's protocol, or
    on a device that runs models in this process, through the LiteRT-LM engine. DeviceError
    (quoting the runner) if it cannot."""
    if device.execution is Execution.ENGINE or runner is None:
        return _smoke_in_process(device, model_remote, config)
    probe = runner.probe
    prompt_remote = device.path("tmp", f"smoke-{secrets.token_hex(6)}.txt")
    flags = chat_flags(
        probe,
        backend=Backend.CPU,
        threads=None,
        max_num_tokens=None,
        max_output_tokens=config.smoke_max_tokens,
        chat_template_file=chat_template,
    )
    prompt = " ".join(config.smoke_prompt.splitlines())
    with tempfile.TemporaryDirectory(prefix="edgekit-smoke-") as tmp:
        prompt_file = Path(tmp) / "prompt.txt"
        # Multi-turn: one user turn, then the empty line that ends the input; llama-cli: one
        # line, then the end of its input; one-shot: the prompt file.
        text = {Protocol.MULTI_TURN: prompt + "\n\n", Protocol.LLAMA_CLI: prompt + "\n"}.get(probe.protocol, prompt)
        prompt_file.write_text(text)
        device.shell(["mkdir", "-p", device.path("tmp")])
        device.push(prompt_file, prompt_remote)
    argv = [f"--model_path={model_remote}", *flags.flags]
    env = _runner_env(runner.folder, runner.binary)
    if probe.protocol == Protocol.LLAMA_CLI:
        command = f"{env} {shlex.join(['-m', model_remote, *flags.flags])} < {shlex.quote(prompt_remote)}"
    elif probe.protocol == Protocol.MULTI_TURN:
        command = f"{env} {shlex.join(argv)} < {shlex.quote(prompt_remote)}"
    else:
        argv.append(f"--input_prompt_file={prompt_remote}")
        command = f"{env} {shlex.join(argv)} < /dev/null"
    try:
        result = device.script(command, timeout_s=config.smoke_timeout_s, check=False)
    finally:
        device.shell(["rm", "-f", prompt_remote], check=False)
    return _smoke_answer(device, result, probe, prompt)


def _smoke_in_process(device: Device, model_path: str, config: DeployConfig) -> SmokeResult:
    from edgekit.engine import run_prompt

    try:
        run = run_prompt(Path(model_path), config.smoke_prompt, max_output_tokens=config.smoke_max_tokens)
    except EdgekitError as exc:
        raise DeviceError(f"{device.serial}: the model does not load: {exc}", serial=device.serial) from exc
    return SmokeResult(
        answer=run.text,
        prefill_tokens=run.prefill_tokens,
        decode_tokens=run.decode_tokens,
        decode_tokens_per_s=run.decode_tokens_per_s,
    )


def _smoke_answer(device: Device, result: ShellResult, probe: RunnerProbe, prompt: str) -> SmokeResult:
    """The runner's answer and BenchmarkInfo from its output; DeviceError if it failed."""
    if probe.protocol == Protocol.LLAMA_CLI:
        return _llama_smoke_answer(device, result)
    stream = result.stderr if probe.benchmark_stream == "stderr" else result.stdout
    info = parsers.parse_benchmark_info(stream) or parsers.parse_benchmark_info(result.stdout + result.stderr)
    if probe.protocol == Protocol.MULTI_TURN:
        answers = parsers.split_multi_turn_answers(result.stdout)
        answer = answers[0] if answers else ""
    else:
        answer = parsers.one_shot_answer(result.stdout, prompt)
    if result.returncode != 0 or info is None or not info.decode:
        raise _smoke_failed(
            device, result, "the runner", _tail_lines(result.stderr or result.stdout) or "no BenchmarkInfo printed"
        )
    return SmokeResult(
        answer=answer,
        prefill_tokens=info.prefill[0].tokens if info.prefill else None,
        decode_tokens=info.decode[0].tokens,
        decode_tokens_per_s=info.decode[0].tokens_per_s,
    )


def _smoke_failed(device: Device, result: ShellResult, runner: str, detail: str) -> DeviceError:
    return DeviceError(
        f"{device.serial}: the model does not load or run with {runner} (exit {result.returncode}"
        f"{signal_name(result.returncode)}): {detail}",
        serial=device.serial,
        returncode=result.returncode,
        stderr=result.stderr,
    )


def _llama_smoke_answer(device: Device, result: ShellResult) -> SmokeResult:
    """llama-cli's answer (stdout) and its own timings of that turn (stderr, -lv 3)."""
    timings = llama_cpp.parse_turn_timings(result.stderr)
    if result.returncode != 0 or not timings:
        errors = [line for line in result.stderr.splitlines() if " E " in f" {line}" or "error" in line]
        detail = _tail_lines("\n".join(errors) or result.stderr or result.stdout)
        raise _smoke_failed(device, result, "llama-cli", detail or "no timings printed")
    answers = llama_cpp.split_answers(result.stdout)
    first = timings[0]
    return SmokeResult(
        answer=answers[0] if answers else "",
        prefill_tokens=first.prefill.tokens,
        decode_tokens=first.decode.tokens,
        decode_tokens_per_s=first.decode.tokens_per_s,
    )


def check_with_host(model: Path, smoke: SmokeResult, config: DeployConfig) -> SmokeResult:
    """`smoke` with this computer's CPU engine's greedy answer to the same prompt and how they compare
    (token by token, with the artifact's own tokenizer). UNAVAILABLE when the engine cannot run here."""
    prompt = " ".join(config.smoke_prompt.splitlines())
    try:
        import litert_lm

        from edgekit.engine import open_engine

        with open_engine(model) as engine:
            session = engine.create_session(
                sampler_config=litert_lm.SamplerConfig(top_k=1), max_output_tokens=config.smoke_max_tokens
            )
            try:
                session.run_prefill([prompt])
                host = "".join(session.run_decode().texts).strip("\n")
            finally:
                session.close()
            phone_ids, host_ids = engine.tokenize(smoke.answer.strip("\n")), engine.tokenize(host)
            diff = answers.first_difference(phone_ids, host_ids)
            where = None if diff is None else _difference_text(engine, diff)
    except (ImportError, EdgekitError, RuntimeError, OSError) as exc:
        return dataclasses.replace(smoke, host_check=HostCheck.UNAVAILABLE, host_answer=f"({exc})")
    if diff is None:
        return dataclasses.replace(smoke, host_check=HostCheck.SAME, host_answer=host)
    return dataclasses.replace(smoke, host_check=HostCheck.DIFFERS, host_answer=where)


def _difference_text(engine: Any, diff: answers.Difference) -> str:
    def token(t: int | None) -> str:
        return "(end of answer)" if t is None else repr(engine.detokenize([t]))

    return f"token {diff.position + 1}: the device says {token(diff.a)}, this computer {token(diff.b)}"


def smoke_notes(smoke: SmokeResult) -> list[str]:
    """What the user must hear about the smoke answer: a difference from this computer's CPU
    engine (a warning, naming the first differing token), an unavailable engine, a degenerate answer."""
    notes = []
    if smoke.host_check is HostCheck.DIFFERS:
        notes.append(
            f"warning: the smoke answer differs from this computer's CPU engine at {smoke.host_answer} "
            "(same artifact, same prompt, greedy): the device's runner or backend may compute wrong answers"
        )
    elif smoke.host_check is HostCheck.UNAVAILABLE:
        notes.append(
            f"this computer's LiteRT-LM CPU engine could not run the artifact {smoke.host_answer}: "
            "the smoke answer was not compared with it"
        )
    kind = answers.classify_answer(smoke.answer)
    if kind is not None:
        notes.append(f"warning: the smoke answer is degenerate ({kind.value}): {smoke.answer[:60]!r}")
    return notes


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
    sha, provenance = _artifact_sha256(artifact, notes)
    # A file no runner loads is refused before anything is sent.
    runtime = check_model_file(artifact.path, notes)
    if runtime == LLAMA_CPP and device.execution is not Execution.RUNNER:
        raise InputError(
            f"{artifact.path.name} is a GGUF: it runs on llama.cpp's llama-cli on a phone (--runner LLAMA_BIN_DIR); "
            f"{device.serial} runs LiteRT-LM in this process"
        )
    runner = resolve_runner(config.runner, runtime) if device.execution is Execution.RUNNER else None
    facts = device.facts()
    if device.execution is Execution.RUNNER:
        runner = _check_runner(device, runner, facts, notes)
    # One sha256sum per file on the device: it decides both the space needed and what to send.
    name = GGUF_MODEL_NAME if runtime == LLAMA_CPP else MODEL_NAME
    model_item = _item(device, artifact.path, ("models", sha), name, sha, label="model", executable=False)
    runner_items = _runner_items(device, runner) if runner is not None else []
    _check_space(device, facts, [model_item, *runner_items])
    shell_facts = _check_shell_notes(device, notes) if device.execution is Execution.RUNNER else None

    model = _place_file(device, model_item, progress)
    runner_placed = on_device = None
    if runner is not None:
        runner_placed, on_device = _place_runner(device, runner, runner_items, progress, runtime)
    harness = _place_harness(device, progress)
    template = _place_chat_template(device, artifact.path, model.remote) if runtime == LLAMA_CPP else None
    smoke = None
    if config.smoke:
        try:
            smoke = smoke_run(device, model.remote, config, on_device, chat_template=template)
        except DeviceError as exc:
            # Not left on the device under its trusted name: the next deploy pushes and tries it again.
            device.shell(["rm", "-rf", device.path("models", sha)], check=False)
            raise DeviceError(
                f"{exc} (the model was removed from the device)",
                serial=exc.serial,
                returncode=exc.returncode,
                stderr=exc.stderr,
            ) from exc
        if on_device is not None and runtime == LITERT_LM:
            smoke = check_with_host(artifact.path, smoke, config)
            notes += smoke_notes(smoke)
        elif on_device is not None:
            notes.append("the smoke answer is not compared with this computer's engine (LiteRT-LM loads no GGUF)")
    _log_deploy(device, sha, runner, harness)
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
        probe=None if on_device is None else on_device.probe,
        shell=shell_facts,
    )


def check_model_file(path: Path, notes: list[str] | None = None) -> str:
    """The runtime that loads `path` (LITERT_LM for a .litertlm bundle, LLAMA_CPP for a GGUF),
    after checking its header; InputError (naming what is wrong) for a file neither loads.
    A GGUF without a chat template gets a note: llama-cli then uses its own default."""
    if not is_gguf(path):
        read_header(path)
        return LITERT_LM
    if llama_cpp.gguf_chat_template(path) is None and notes is not None:
        if llama_cpp.fallback_chat_template(path) is not None:
            notes.append(
                f"{path.name} has no chat template (tokenizer.chat_template): edgekit gives llama-cli Gemma's turn "
                f"format ({llama_cpp.CHAT_TEMPLATE_FILE} beside the model), as LiteRT-LM applies to Gemma models"
            )
        else:
            notes.append(
                f"{path.name} has no chat template (tokenizer.chat_template): llama-cli formats the turns in "
                f"ChatML, its default (common/chat.cpp), not the model's"
            )
    return LLAMA_CPP


def chat_template_remote(model_remote: str) -> str:
    """Where deploy puts the turn format for a GGUF without one (llama_cpp.fallback_chat_template)."""
    return posixpath.join(posixpath.dirname(model_remote), llama_cpp.CHAT_TEMPLATE_FILE)


def _place_chat_template(device: Device, model: Path, model_remote: str) -> str | None:
    template = llama_cpp.fallback_chat_template(model)
    if template is None:
        return None
    remote = chat_template_remote(model_remote)
    with tempfile.TemporaryDirectory(prefix="edgekit-template-") as tmp:
        local = Path(tmp) / llama_cpp.CHAT_TEMPLATE_FILE
        local.write_text(template)
        device.push(local, remote)
    return remote


def _artifact_sha256(artifact: Artifact, notes: list[str]) -> tuple[str, str]:
    """(sha256, provenance): verified against the manifest, or computed here without one."""
    if artifact.manifest is not None:
        return artifact.verify(), "manifest"
    notes.append("no manifest beside the artifact: provenance unknown (sha256 computed here)")
    return sha256_file(artifact.path), "unknown"


def _check_runner(device: Device, runner: RunnerFiles | None, facts: DeviceFacts, notes: list[str]) -> RunnerFiles:
    """The runner a device that runs one needs: present, built for the device's ABI; notes
    for what may keep it from starting (unshipped libraries, not an ELF)."""
    if runner is None:
        raise InputError(
            "no on-device runner: pass --runner PATH (LiteRT-LM's litert_lm_advanced_main or litert_lm_main "
            "for android_arm64, or its prebuilt/android_arm64/ folder; for a GGUF, llama.cpp's build folder "
            "with llama-cli) or set EDGEKIT_RUNNER; edgekit remembers it"
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
            f"use the runner built for {facts.abis[0] if facts.abis else 'the phone'}"
        )
    return runner


def _runner_items(device: Device, runner: RunnerFiles) -> list[_Item]:
    """The runner binary and its libraries, in `runners/<sha256>/`, each checked on the device."""
    folder = ("runners", runner.sha256)
    items = [
        _item(
            device,
            runner.binary,
            folder,
            runner.binary.name,
            sha256_file(runner.binary),
            label="runner",
            executable=True,
        )
    ]
    items += [
        _item(device, lib, folder, lib.name, sha256_file(lib), label=lib.name, executable=True)
        for lib in (*runner.libraries, *runner.others)
    ]
    return items


def _check_space(device: Device, facts: DeviceFacts, items: list[_Item]) -> None:
    """DeviceError when what must be sent (files not already there) does not fit, with a margin."""
    need = sum(item.local.stat().st_size for item in items if not item.there)
    if facts.free_bytes is not None and need + _SPACE_MARGIN > facts.free_bytes:
        raise DeviceError(
            f"{device.serial}: not enough space for {device.work_root}: need {need / 1e6:.0f} MB + "
            f"{_SPACE_MARGIN // 2**20} MiB margin, {facts.free_bytes / 1e6:.0f} MB free; "
            f"run `edgekit clean --device {device.serial}` or free space",
            serial=device.serial,
        )


def _check_shell_notes(device: Device, notes: list[str]) -> dict[str, bool]:
    """check_shell, with a note for each missing tool the harness can do without."""
    shell_facts = check_shell(device)
    if not shell_facts["setsid"]:
        notes.append("the device shell has no setsid: the run is started in the background with SIGHUP ignored")
    if not shell_facts["power_supply"]:
        notes.append("/sys/class/power_supply is not readable here: battery-bench measures speed only")
    return shell_facts


def _place_runner(
    device: Device, runner: RunnerFiles, items: list[_Item], progress: PushProgress | None, runtime: str
) -> tuple[Placed, RunnerOnDevice]:
    """Place the runner's files, then probe what each program speaks (stored beside it),
    in order, until one runs `runtime`'s models: a folder's programs are told apart by what
    they do, never by their names."""
    for item in items:
        _place_file(device, item, progress)
    folder = device.path("runners", runner.sha256)
    size = sum(item.local.stat().st_size for item in items)
    pushed = not all(item.there for item in items)
    libraries = tuple(lib.name for lib in runner.libraries)
    want = "llama.cpp's llama-cli (a GGUF runs on it)" if runtime == LLAMA_CPP else "a LiteRT-LM runner (.litertlm)"
    refusals: list[str] = []
    for program in (runner.binary, *runner.others):
        try:
            probe = probe_runner(device, folder, program.name, libraries, elf_needed(program))
        except InputError as exc:
            refusals.append(str(exc))
            continue
        if probe.runtime != runtime:
            remember_runner(runner, probe.runtime)
            refusals.append(f"runner {program.name} is a {probe.runtime} runner, and this model needs {want}")
            continue
        remember_runner(runner, probe.runtime)
        remote = device.path("runners", runner.sha256, program.name)
        placed = Placed(remote=remote, sha256=runner.sha256, size_bytes=size, pushed=pushed)
        return placed, RunnerOnDevice(folder=folder, binary=remote, probe=probe)
    if len(refusals) == 1:
        raise InputError(refusals[0])
    raise InputError(f"no program in the runner folder is {want}: " + "; ".join(refusals))


def _log_deploy(device: Device, sha: str, runner: RunnerFiles | None, harness: Placed) -> None:
    """One line in deploys.log: what `clean` keeps."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{stamp} {sha} {runner.sha256 if runner else '-'} {harness.sha256}"
    device.script(f"echo {shlex.quote(line)} >> {shlex.quote(device.path('deploys.log'))}")


def clean(device: Device, *, everything: bool, force: bool = False) -> list[str]:
    """Remove edgekit's files from `device`: all of them, or all but the newest deploy's.

    Returns the device paths removed. DeviceBusy while a battery-bench run holds the phone
    (its files are in use), unless `force`.
    """
    from edgekit.bench import lock  # bench imports deploy: not at the top

    if not force and (who := lock.holder(device)) is not None:
        raise DeviceBusy(
            f"{lock.busy_message(device.serial, who)}; `edgekit clean --force` removes its files all the same",
            serial=device.serial,
            run_id=who.run_id,
        )
    root = device.work_root
    if everything:
        if device.shell(["test", "-e", root], check=False).returncode == 0:
            device.shell(["rm", "-rf", root])
            return [root]
        return []
    log = device.shell(["cat", device.path("deploys.log")], check=False).stdout.strip().splitlines()
    keep: set[tuple[str, str]] = set()
    if log:
        _stamp, model, runner, harness = (log[-1].split() + ["-"] * 4)[:4]
        keep = {("models", model), ("runners", runner), ("harness", harness)}
    removed = []
    for kind in ("models", "runners", "harness", "tmp"):
        listing = device.shell(["ls", "-1", device.path(kind)], check=False)
        if listing.returncode != 0:
            continue
        for name in listing.stdout.split():
            if (kind, name) not in keep:
                path = device.path(kind, name)
                device.shell(["rm", "-rf", path])
                removed.append(path)
    if log:
        device.script(f"echo {shlex.quote(log[-1])} > {shlex.quote(device.path('deploys.log'))}")
    return removed
