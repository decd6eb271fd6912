"""The on-device runner on this computer: which files it is, where edgekit keeps it, what its ELF says.

A runner is a binary plus the shared libraries (and, for a llama.cpp build, the other
programs) beside it, addressed together by one sha256 (`RunnerFiles`). It comes from
`--runner`, else $EDGEKIT_RUNNER, else the one remembered last in the user cache
(`runner_cache_dir()`). `resolve_runner` finds it and only reads the cache;
`remember_runner` copies it into the cache and marks it the last one, of its runtime and
of all, and only the CLI calls it (a library call never writes the user's cache).
`elf_abi` / `elf_needed` read what bionic's linker will check before the runner is sent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
from pathlib import Path

from edgekit import runtimes
from edgekit._data import user_cache_dir
from edgekit._files import atomic_write
from edgekit.artifact import sha256_file
from edgekit.device.base import Device, DeviceFacts
from edgekit.errors import InputError
from edgekit.probe import RunnerProbe

_ELF_MACHINES = {183: "arm64-v8a", 62: "x86_64", 40: "armeabi-v7a", 3: "x86"}


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
    name: str = ""
    """The binary's name on the device and in the cache ("": its own)."""

    @property
    def binary_name(self) -> str:
        """The name `binary` is pushed (and cached) under."""
        return self.name or self.binary.name


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
    name = name or binary.name
    if not libs and not others:
        return RunnerFiles(binary=binary, libraries=(), sha256=sha256_file(binary), name=name)
    files = {name: binary, **{p.name: p for p in (*libs, *others)}}
    return RunnerFiles(binary=binary, libraries=libs, sha256=tree_sha256(files), others=others, name=name)


def _programs(folder: Path) -> list[Path]:
    """The executables in a runner folder, its shared libraries (which may carry an execute bit) left out."""
    programs = [p for p in sorted(folder.iterdir()) if p.is_file() and os.access(p, os.X_OK) and not _is_library(p)]
    if not programs:
        raise InputError(
            f"runner folder {folder} holds no executable: pass "
            f"{', '.join(r.runner_folder for r in runtimes.RUNTIMES)} or the runner binary itself",
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
    """Keep `runner` in edgekit's cache (content-addressed: its files are copied once), note which
    runtime the phone's probe found it runs, and make it the last runner: of that runtime (so a
    campaign of a .litertlm and a .gguf finds each its own runner) and of all. Writes the user's
    cache: the CLI calls it after a deploy that ran `runner`; the library never does."""
    cache = runner_cache_dir()
    folder = cache / runner.sha256
    folder.mkdir(parents=True, exist_ok=True)
    cached = folder / runner.binary_name
    copies = [(runner.binary, cached), *[(p, folder / p.name) for p in (*runner.libraries, *runner.others)]]
    for src, dst in copies:
        if not dst.is_file():
            with atomic_write(dst) as tmp:
                shutil.copyfile(src, tmp)
                tmp.chmod(0o755)
    (folder / ".runtime").write_text(runtime + "\n")
    where = folder if runner.others else cached
    (cache / f"last-{runtime}").write_text(f"{where}\n")
    (cache / "last").write_text(f"{where}\n")


def resolve_runner(given: Path | None, runtime: str | None = None) -> RunnerFiles | None:
    """The runner to push: `given` (a binary, or its folder), else $EDGEKIT_RUNNER, else
    the last one remembered (`remember_runner`). Reads the cache, never writes it.

    `runtime` (a Runtime.name: the model's): a `given` runner the phone's probe found
    to run the other one gives way to the last runner of this runtime, where there is one;
    without `given`, the last runner of this runtime comes first."""
    if given is None and os.environ.get("EDGEKIT_RUNNER"):
        given = Path(os.environ["EDGEKIT_RUNNER"])
    cache = runner_cache_dir()
    if given is None:
        own = cache / f"last-{runtime}"
        if runtime is not None and own.is_file() and (found := _cached_runner(Path(own.read_text().strip()))):
            return found
        last = cache / "last"
        if last.is_file():
            return _cached_runner(Path(last.read_text().strip()))
        return None
    chosen = _given_runner(given, runtime)
    known = cache / chosen.sha256 / ".runtime"
    if runtime is not None and known.is_file() and known.read_text().strip() != runtime:
        own = cache / f"last-{runtime}"
        other = _cached_runner(Path(own.read_text().strip())) if own.is_file() else None
        return other or chosen
    return chosen


def _given_runner(given: Path, runtime: str | None = None) -> RunnerFiles:
    """The runner files the user named, where they are; a binary name a shell would have to
    quote is pushed under the default runtime's `runner_name`."""
    others: tuple[Path, ...] = ()
    if given.is_dir():
        programs = _programs(given)
        given, others = programs[0], tuple(programs[1:])
    if not given.is_file():
        which = runtimes.named(runtime) if runtime else runtimes.DEFAULT
        raise InputError(
            f"runner {given} does not exist: pass {which.runner_file} or its folder",
            path=given,
        )
    name = given.name if re.fullmatch(r"[A-Za-z0-9._-]+", given.name) else runtimes.DEFAULT.runner_name
    return _runner_files(given, name, others)


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


def tree_sha256(files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for name, path in sorted(files.items()):
        digest.update(f"{name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunnerOnDevice:
    """A deployed runner: its folder, its binary (device paths) and what the probe found."""

    folder: str
    binary: str
    probe: RunnerProbe


def check_runner(device: Device, runner: RunnerFiles | None, facts: DeviceFacts, notes: list[str]) -> RunnerFiles:
    """The runner a device that runs one needs: present, built for the device's ABI; notes
    for what may keep it from starting (unshipped libraries, not an ELF)."""
    if runner is None:
        raise InputError(
            f"no on-device runner: pass --runner PATH ({'; '.join(r.runner_help for r in runtimes.RUNTIMES)}) "
            "or set EDGEKIT_RUNNER; edgekit remembers it"
        )
    abi = elf_abi(runner.binary)
    shipped = {lib.name for lib in runner.libraries}
    unshipped = [n for n in elf_needed(runner.binary) or () if n not in shipped and n not in _SYSTEM_LIBS]
    if unshipped:
        notes.append(
            f"runner {runner.binary_name} needs {', '.join(unshipped)}, not beside it: if the phone lacks "
            f"them it will not start (pass its prebuilt/android_arm64/ folder)"
        )
    if abi is None:
        notes.append(f"runner {runner.binary_name} is not an ELF binary (a script?): it is run as it is")
    elif abi not in facts.abis:
        raise InputError(
            f"the runner is built for {abi} but {device.serial} runs {', '.join(facts.abis) or 'an unknown ABI'}: "
            f"use the runner built for {facts.abis[0] if facts.abis else 'the phone'}"
        )
    return runner
