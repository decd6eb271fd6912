"""FakeDevice: an in-process Device for unit tests, with no sockets and no subprocesses.

A file tree in memory and a shell that understands the commands edgekit's deploy, clean
and run-folder code send as argv lists (POSIX/toybox semantics as the ADB device emulator
gives them): `getprop`, `df`, `sha256sum`, `mkdir -p`, `rm [-f|-rf]`, `mv [-f]`, `chmod`,
`test -d|-e|-f`, `cat`, `ls [-1]`. Scripts (`sh -c`) it knows: the shell check deploy
runs, `echo LINE >> FILE` / `> FILE`, and a runner's `--helpfull` / `--version`, which the
default runtime's runner stand-in answers in this process (kind `runner_kind`:
`Runtime.run_runner_standin`). Register others with `on_script`. Anything else exits 127 naming the
command, so a test sees what the fake lacks instead of a silent success.

What a test can set: `abis`, `free_bytes`, `shell_tools` (what the shell check finds),
`corrupt_pushes` (a pushed file arrives with one byte changed), `battery_sample`. What it
can read: `files` (path -> bytes), `dirs`, `modes`, `commands` (every argv, in order),
`pushes` (every pushed device path). Everything it reports is simulated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import posixpath
import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from edgekit.device.base import (
    DEVICE_TMP,
    BatterySample,
    BatterySource,
    Device,
    DeviceFacts,
    ProgressFn,
    ShellResult,
    check_result,
)

ScriptReply = Callable[[str], ShellResult]
_ALL_TOOLS = frozenset({"mkfifo", "setsid", "sha256sum", "power_supply"})


class FakeDevice(Device):
    """A phone in this process: files in a dict, a shell of the commands edgekit sends."""

    def __init__(
        self,
        serial: str = "fake-1",
        *,
        abis: tuple[str, ...] = ("arm64-v8a",),
        free_bytes: int = 8 * 1024**3,
        shell_tools: frozenset[str] = _ALL_TOOLS,
        runner_kind: str = "advanced",
    ) -> None:
        self.serial = serial
        self.abis = abis
        self.free_bytes = free_bytes
        self.shell_tools = shell_tools
        self.runner_kind = runner_kind
        self.corrupt_pushes = False
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = {"/"}
        self.modes: dict[str, int] = {}
        self.commands: list[list[str]] = []
        self.pushes: list[str] = []
        self.battery_sample = BatterySample(
            level_pct=80,
            status=3,
            plugged=False,
            charge_counter_uah=3_200_000,
            current_now_ua=-250_000,
            voltage_now_uv=3_900_000,
            temperature_c=30.0,
            charge_full_design_uah=4_000_000,
            source=BatterySource.SYSFS,
        )
        self._scripts: list[tuple[re.Pattern[str], ScriptReply]] = []
        self._mkdir(DEVICE_TMP)

    # --- the Device interface -------------------------------------------------------
    def shell(self, argv: Sequence[str], *, timeout_s: float = 60.0, check: bool = True) -> ShellResult:
        """Run `argv` against the in-memory tree (see the module docstring for what it knows)."""
        argv = list(argv)
        self.commands.append(argv)
        result = self._run(argv)
        return check_result(self.serial, shlex.join(argv), result, check)

    def push(self, local: Path, remote: str, *, progress: ProgressFn | None = None) -> None:
        """Store `local`'s bytes at `remote` (parents created, as adb push does)."""
        data = Path(local).read_bytes()
        if self.corrupt_pushes and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        path = self._abs(remote)
        self._mkdir(posixpath.dirname(path))
        self.files[path] = data
        self.pushes.append(path)
        if progress is not None:
            progress(len(data), len(data))

    def pull(self, remote: str, local: Path) -> None:
        """Write the bytes at `remote` to `local`."""
        Path(local).write_bytes(self.files[self._abs(remote)])

    def facts(self) -> DeviceFacts:
        """Facts from its getprop and df, marked as simulated."""
        facts = super().facts()
        return dataclasses.replace(facts, emulated=True, emulator="edgekit FakeDevice (in-process)")

    def battery(self) -> BatterySample:
        """`battery_sample`, as set by the test."""
        return self.battery_sample

    # --- test helpers ---------------------------------------------------------------
    def on_script(self, pattern: str, reply: ScriptReply) -> None:
        """Answer `sh -c` scripts matching regex `pattern` (searched) with `reply(script)`."""
        self._scripts.append((re.compile(pattern), reply))

    def write(self, path: str, data: bytes) -> None:
        """Put a file on the fake device (parents created)."""
        path = self._abs(path)
        self._mkdir(posixpath.dirname(path))
        self.files[path] = data

    def listing(self, folder: str) -> list[str]:
        """The names directly inside `folder`, sorted."""
        folder = self._abs(folder).rstrip("/") + "/"
        names = {p[len(folder) :].split("/")[0] for p in [*self.files, *self.dirs] if p.startswith(folder)}
        return sorted(n for n in names if n)

    # --- the shell ------------------------------------------------------------------
    def _abs(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(DEVICE_TMP, path))

    def _mkdir(self, path: str) -> None:
        while path not in self.dirs:
            self.dirs.add(path)
            path = posixpath.dirname(path)

    def _exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs

    def _run(self, argv: list[str]) -> ShellResult:
        if not argv:
            return ShellResult(0, "", "")
        name, args = argv[0], argv[1:]
        flags = {a for a in args if a.startswith("-")}
        paths = [self._abs(a) for a in args if not a.startswith("-")]
        handler = {
            "getprop": self._getprop,
            "df": self._df,
            "sha256sum": self._sha256sum,
            "mkdir": self._mkdir_cmd,
            "rm": self._rm,
            "mv": self._mv,
            "cat": self._cat,
            "ls": self._ls,
        }.get(name)
        if name == "sh" and args[:1] == ["-c"] and len(args) == 2:
            return self._script(args[1])
        if name == "test" and len(args) == 2:
            path = self._abs(args[1])
            ok = {"-d": path in self.dirs, "-f": path in self.files, "-e": self._exists(path)}.get(args[0])
            if ok is not None:
                return ShellResult(0 if ok else 1, "", "")
        if name == "chmod" and len(args) == 2:
            return self._chmod(args[0], self._abs(args[1]))
        if handler is not None:
            return handler(args, flags, paths)
        return ShellResult(127, "", f"FakeDevice: {shlex.join(argv)}: not a command the fake knows\n")

    def _getprop(self, args: list[str], _flags: set[str], _paths: list[str]) -> ShellResult:
        props = {
            "ro.product.manufacturer": "edgekit",
            "ro.product.model": "FakeDevice",
            "ro.product.cpu.abilist": ",".join(self.abis),
            "ro.build.version.release": "14",
            "ro.build.version.sdk": "34",
        }
        if args:
            return ShellResult(0, props.get(args[0], "") + "\n", "")
        return ShellResult(0, "".join(f"[{k}]: [{v}]\n" for k, v in props.items()), "")

    def _df(self, _args: list[str], _flags: set[str], paths: list[str]) -> ShellResult:
        # toybox df: 1K blocks (what parsers.parse_df_available_bytes reads)
        free_k = self.free_bytes // 1024
        rows = "".join(f"/dev/block/dm-5 {free_k * 2} {free_k} {free_k} 50% {p}\n" for p in paths)
        return ShellResult(0, "Filesystem 1K-blocks Used Available Use% Mounted on\n" + rows, "")

    def _sha256sum(self, _args: list[str], _flags: set[str], paths: list[str]) -> ShellResult:
        out, err = [], []
        for p in paths:
            if p in self.files:
                out.append(f"{hashlib.sha256(self.files[p]).hexdigest()}  {p}\n")
            else:
                err.append(f"sha256sum: {p}: No such file or directory\n")
        return ShellResult(1 if err else 0, "".join(out), "".join(err))

    def _mkdir_cmd(self, _args: list[str], flags: set[str], paths: list[str]) -> ShellResult:
        for p in paths:
            if p in self.files:
                return ShellResult(1, "", f"mkdir: {p}: File exists\n")
            if "-p" not in flags and posixpath.dirname(p) not in self.dirs:
                return ShellResult(1, "", f"mkdir: {p}: No such file or directory\n")
            self._mkdir(p)
        return ShellResult(0, "", "")

    def _rm(self, _args: list[str], flags: set[str], paths: list[str]) -> ShellResult:
        recursive = any("r" in f for f in flags)
        force = any("f" in f for f in flags)
        for p in paths:
            if p in self.files:
                del self.files[p]
                self.modes.pop(p, None)
            elif p in self.dirs:
                if not recursive:
                    return ShellResult(1, "", f"rm: {p}: Is a directory\n")
                self._drop_tree(p)
            elif not force:
                return ShellResult(1, "", f"rm: {p}: No such file or directory\n")
        return ShellResult(0, "", "")

    def _drop_tree(self, root: str) -> None:
        inside = root.rstrip("/") + "/"
        for f in [f for f in self.files if f.startswith(inside)]:
            del self.files[f]
            self.modes.pop(f, None)
        self.dirs -= {d for d in self.dirs if d == root or d.startswith(inside)}

    def _mv(self, _args: list[str], _flags: set[str], paths: list[str]) -> ShellResult:
        if len(paths) != 2:
            return ShellResult(1, "", "mv: needs 2 arguments\n")
        src, dst = paths
        if dst in self.dirs:  # into an existing folder
            dst = posixpath.join(dst, posixpath.basename(src))
        if src in self.files:
            self.files[dst] = self.files.pop(src)
            if src in self.modes:
                self.modes[dst] = self.modes.pop(src)
            return ShellResult(0, "", "")
        if src in self.dirs:
            inside = src.rstrip("/") + "/"
            for f in [f for f in self.files if f.startswith(inside)]:
                self.files[dst + f[len(src) :]] = self.files.pop(f)
                if f in self.modes:
                    self.modes[dst + f[len(src) :]] = self.modes.pop(f)
            moved = {d for d in self.dirs if d == src or d.startswith(inside)}
            self.dirs -= moved
            self.dirs |= {dst + d[len(src) :] for d in moved}
            return ShellResult(0, "", "")
        return ShellResult(1, "", f"mv: {src}: No such file or directory\n")

    def _chmod(self, mode: str, path: str) -> ShellResult:
        if path not in self.files:
            return ShellResult(1, "", f"chmod: {path}: No such file or directory\n")
        self.modes[path] = int(mode, 8)
        return ShellResult(0, "", "")

    def _cat(self, _args: list[str], _flags: set[str], paths: list[str]) -> ShellResult:
        missing = [p for p in paths if p not in self.files]
        if missing:
            return ShellResult(1, "", f"cat: {missing[0]}: No such file or directory\n")
        return ShellResult(0, b"".join(self.files[p] for p in paths).decode(errors="replace"), "")

    def _ls(self, _args: list[str], _flags: set[str], paths: list[str]) -> ShellResult:
        p = paths[0] if paths else DEVICE_TMP
        if p in self.files:
            return ShellResult(0, p + "\n", "")
        if p not in self.dirs:
            return ShellResult(1, "", f"ls: {p}: No such file or directory\n")
        return ShellResult(0, "".join(n + "\n" for n in self.listing(p)), "")

    def _script(self, script: str) -> ShellResult:
        for pattern, reply in self._scripts:
            if pattern.search(script):
                return reply(script)
        if ".probe-fifo" in script:  # placement.check_shell
            tmp = shlex.split(script.split(";", 1)[0])[-1]  # its first command: mkdir -p TMP
            self._mkdir(self._abs(tmp))
            return ShellResult(0, "".join(f"{t}={int(t in self.shell_tools)}\n" for t in sorted(_ALL_TOOLS)), "")
        if "bench.lock" in script:  # bench/lock.py
            return self._lock_script(script)
        runner = re.search(r"(\S+) --(helpfull|version) 2>&1", script)
        if runner is not None:  # probe.probe_runner
            return self._runner(shlex.split(runner.group(1))[0], runner.group(2))
        try:
            words = shlex.split(script)
        except ValueError:
            words = []
        if len(words) == 4 and words[0] == "echo" and words[2] in (">", ">>"):
            path = self._abs(words[3])
            if posixpath.dirname(path) not in self.dirs:
                return ShellResult(1, "", f"sh: {path}: No such file or directory\n")
            before = self.files.get(path, b"") if words[2] == ">>" else b""
            self.files[path] = before + (words[1] + "\n").encode()
            return ShellResult(0, "", "")
        return ShellResult(127, "", f"FakeDevice: no reply for the script {script!r}: add one with on_script\n")

    def _lock_script(self, script: str) -> ShellResult:
        """bench/lock.py's scripts on a phone with no processes: a lock is live until its run's
        status says done (the fake runs no driver whose death would make it stale)."""
        lock = self.path("bench.lock")
        held = dict(line.split("=", 1) for line in self.files.get(lock, b"").decode().splitlines() if "=" in line)
        run_dir = self.path("runs", held.get("run_id", ""))
        live = lock in self.files and self.files.get(run_dir + "/status", b"").strip() != b"done"
        state = f"live {held.get('run_id')} {held.get('started')}" if live else "none"
        if " ln " in script:  # acquire
            m = re.search(r"printf '[^']*' (\S+) (\S+)", script)
            if m is None:
                return ShellResult(1, "", "FakeDevice: a lock script it cannot read\n")
            if live and held.get("run_id") != m.group(1):
                return ShellResult(0, state + "\n", "")
            self.files[lock] = f"run_id={m.group(1)}\nstarted={m.group(2)}\nepoch=0\n".encode()
            return ShellResult(0, "ok\n", "")
        if "rm -f" in script:  # release
            m = re.search(r"= '?run_id=([0-9A-Za-z._-]+)", script)
            if m is not None and held.get("run_id") == m.group(1):
                del self.files[lock]
            return ShellResult(0, "", "")
        return ShellResult(0, state + "\n", "")

    def _runner(self, exe: str, flag: str) -> ShellResult:
        from edgekit import runtimes

        path = self._abs(exe)
        if path not in self.files:
            return ShellResult(127, f"sh: {exe}: not found\n", "")
        if self.modes.get(path, 0) & 0o111 == 0:
            return ShellResult(126, f"sh: {exe}: Permission denied\n", "")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):  # the probe merges 2>&1
            code = runtimes.DEFAULT.run_runner_standin(self.runner_kind, [f"--{flag}"])
        return ShellResult(code, out.getvalue(), "")
