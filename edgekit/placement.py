"""Files onto a device under its work root: content-addressed, verified, atomic; and `clean`.

Each file is pushed to a `.part` name, its sha256 checked on the device (`sha256sum`),
then renamed: a half-pushed file never has a final name, and a file that already has its
final name and hash is not pushed again (`plan_item` asks, once per file, and the same
answer decides the space needed). The harness folder is placed the same way as a whole;
the runner's files are placed, then probed on the device until one program runs the
model's runtime. `deploys.log` gets one line per deploy: what `clean` keeps.
"""

from __future__ import annotations

import dataclasses
import datetime
import posixpath
import shlex
import tempfile
from collections.abc import Callable
from pathlib import Path

from edgekit import runtimes
from edgekit._data import data_dir
from edgekit.artifact import sha256_file
from edgekit.device.base import Device, DeviceFacts
from edgekit.errors import DeviceBusy, DeviceError, InputError
from edgekit.probe import probe_runner
from edgekit.runners import RunnerFiles, RunnerOnDevice, elf_needed, tree_sha256
from edgekit.runtimes.base import Runtime

_SPACE_MARGIN = 16 * 1024 * 1024


PushProgress = Callable[[str, int, int], None]
"""`progress(label, bytes_done, bytes_total)`."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Placed:
    """One file or folder on the device: where, its sha256, whether this deploy sent it."""

    remote: str
    sha256: str
    size_bytes: int
    pushed: bool


def harness_files() -> dict[str, Path]:
    """The device-side harness files (relative name -> local path), from `android_harness/`."""
    root = data_dir("android_harness")
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
    }


def _remote_sha256(device: Device, remote: str) -> str | None:
    result = device.shell(["sha256sum", remote], check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return result.stdout.split()[0]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Item:
    """One file to place under the work root: `folder` (relative parts) / `name`."""

    local: Path
    folder: tuple[str, ...]
    name: str
    sha256: str
    label: str
    executable: bool
    there: bool
    """Already on the device under its final name, with this sha256."""


def plan_item(
    device: Device, local: Path, folder: tuple[str, ...], name: str, sha: str, *, label: str, executable: bool
) -> Item:
    there = _remote_sha256(device, device.path(*folder, name)) == sha
    return Item(local=local, folder=folder, name=name, sha256=sha, label=label, executable=executable, there=there)


def place_file(device: Device, item: Item, progress: PushProgress | None) -> Placed:
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
            f"{label} arrived corrupted (sha256 {got or 'unreadable'}, expected {item.sha256[:12]}…): run again",
            serial=device.serial,
        )
    if item.executable:
        device.shell(["chmod", "755", part])
    device.shell(["mv", "-f", part, remote])
    return Placed(remote=remote, sha256=item.sha256, size_bytes=size, pushed=True)


def place_harness(device: Device, progress: PushProgress | None) -> Placed:
    files = harness_files()
    sha = tree_sha256(files)
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
            raise DeviceError(f"harness file {name} arrived corrupted: run again", serial=device.serial)
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
                f"the device shell cannot run {tool} in {device.work_root} ({why}): "
                f"edgekit needs Android 7+ with toybox",
                serial=device.serial,
            )
    return facts


def chat_template_remote(runtime: Runtime, model_remote: str) -> str:
    """Where deploy puts the chat template the runtime gives a model without one (Runtime.chat_template)."""
    return posixpath.join(posixpath.dirname(model_remote), runtime.chat_template_file)


def place_chat_template(device: Device, runtime: Runtime, model: Path, model_remote: str) -> str | None:
    """Put the chat template `runtime` gives `model` beside it on the device; its device
    path, None when the model needs none."""
    template = runtime.chat_template(model)
    if template is None:
        return None
    remote = chat_template_remote(runtime, model_remote)
    with tempfile.TemporaryDirectory(prefix="edgekit-template-") as tmp:
        local = Path(tmp) / runtime.chat_template_file
        local.write_text(template)
        device.push(local, remote)
    return remote


def runner_items(device: Device, runner: RunnerFiles) -> list[Item]:
    """The runner binary and its libraries, in `runners/<sha256>/`, each checked on the device."""
    folder = ("runners", runner.sha256)
    items = [
        plan_item(
            device,
            runner.binary,
            folder,
            runner.binary_name,
            sha256_file(runner.binary),
            label="runner",
            executable=True,
        )
    ]
    items += [
        plan_item(device, lib, folder, lib.name, sha256_file(lib), label=lib.name, executable=True)
        for lib in (*runner.libraries, *runner.others)
    ]
    return items


def check_space(device: Device, facts: DeviceFacts, items: list[Item]) -> None:
    """DeviceError when what must be sent (files not already there) does not fit, with a margin."""
    need = sum(item.local.stat().st_size for item in items if not item.there)
    if facts.free_bytes is not None and need + _SPACE_MARGIN > facts.free_bytes:
        raise DeviceError(
            f"not enough space for {device.work_root}: need {need / 1e6:.0f} MB + "
            f"{_SPACE_MARGIN // 2**20} MiB margin, {facts.free_bytes / 1e6:.0f} MB free; "
            f"run `edgekit clean --device {device.serial}` or free space",
            serial=device.serial,
        )


def check_shell_notes(device: Device, notes: list[str]) -> dict[str, bool]:
    """check_shell, with a note for each missing tool the harness can do without."""
    shell_facts = check_shell(device)
    if not shell_facts["setsid"]:
        notes.append("the device shell has no setsid: the run is started in the background with SIGHUP ignored")
    if not shell_facts["power_supply"]:
        notes.append("/sys/class/power_supply is not readable here: battery-bench measures speed only")
    return shell_facts


def place_runner(
    device: Device, runner: RunnerFiles, items: list[Item], progress: PushProgress | None, runtime: Runtime
) -> tuple[Placed, RunnerOnDevice]:
    """Place the runner's files, then probe what each program speaks (stored beside it),
    in order, until one runs `runtime`'s models: a folder's programs are told apart by what
    they do, never by their names."""
    for item in items:
        place_file(device, item, progress)
    folder = device.path("runners", runner.sha256)
    size = sum(item.local.stat().st_size for item in items)
    pushed = not all(item.there for item in items)
    libraries = tuple(lib.name for lib in runner.libraries)
    want = runtime.wanted
    refusals: list[str] = []
    for name, program in ((runner.binary_name, runner.binary), *((p.name, p) for p in runner.others)):
        try:
            probe = probe_runner(device, folder, name, libraries, elf_needed(program))
        except InputError as exc:
            refusals.append(str(exc))
            continue
        if (theirs := runtimes.for_probe(probe)) is not runtime:
            refusals.append(f"runner {name} is a {theirs.name} runner, and this model needs {want}")
            continue
        remote = device.path("runners", runner.sha256, name)
        placed = Placed(remote=remote, sha256=runner.sha256, size_bytes=size, pushed=pushed)
        return placed, RunnerOnDevice(folder=folder, binary=remote, probe=probe)
    if len(refusals) == 1:
        raise InputError(refusals[0])
    raise InputError(f"no program in the runner folder is {want}: " + "; ".join(refusals))


def log_deploy(device: Device, sha: str, runner: RunnerFiles | None, harness: Placed) -> None:
    """One line in deploys.log: what `clean` keeps."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{stamp} {sha} {runner.sha256 if runner else '-'} {harness.sha256}"
    device.script(f"echo {shlex.quote(line)} >> {shlex.quote(device.path('deploys.log'))}")


def clean(device: Device, *, everything: bool, force: bool = False) -> list[str]:
    """Remove edgekit's files from `device`: all of them, or all but the newest deploy's.

    Returns the device paths removed. DeviceBusy while a battery-bench run holds the phone
    (its files are in use), unless `force`: then that run is stopped first (it fails).
    """
    from edgekit.bench import lock, run_folder  # bench imports deploy, which imports this module: not at the top

    if (who := lock.holder(device)) is not None:
        if not force:
            raise DeviceBusy(
                f"{lock.busy_message(device.serial, who)}; `edgekit clean --force` removes its files all the same",
                serial=device.serial,
                run_id=who.run_id,
            )
        # Stop the live run first: a driver still writing into its folder makes `rm -rf` fail
        # ("Directory not empty") and would go on running the model with its files gone.
        run_folder.stop(device, run_folder.run_paths(device, who.run_id, harness_dir=""))
        lock.release(device, who.run_id)
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
