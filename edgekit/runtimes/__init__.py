"""The on-device runtimes edgekit drives, each one implementation of `base.Runtime`.

RUNTIMES           every runtime, in the order a runner binary is probed
DEFAULT            the runtime of edgekit convert's artifacts, and of a model file or a
                   binary no runtime recognises
for_model(path)    the runtime whose model format `path` is (its header checked)
named(name)        the runtime a result or the runner cache names
for_protocol(p)    the runtime whose runners speak protocol `p`
for_probe(probe)   the runtime of a probed runner

Who names a runtime: its implementation, a module or package of this one that exports
`RUNTIME` (llama_cpp.py; litert_lm/, whose runner stand-ins live there too), and this
registry, which imports each implementation by its module name to list it. The rest of
edgekit names none: it asks the registry for a runtime and the runtime for what to say
(`Runtime.name`, `model_format`, `runner_binaries`, …), and its help texts and messages are
composed from those. Two parts of edgekit are the default runtime's host side and name it:
edgekit/convert/ (it writes its bundles) and edgekit/engine.py (it runs them on this
computer). tests/test_runtimes.py checks.
"""

from __future__ import annotations

from pathlib import Path

from msgspec import UnsetType

from edgekit.runtimes import litert_lm, llama_cpp
from edgekit.runtimes.base import Protocol, RunnerProbe, Runtime

RUNTIMES: tuple[Runtime, ...] = (litert_lm.RUNTIME, llama_cpp.RUNTIME)
"""In probe order: an absl `--helpfull` first, then llama.cpp's `--help`."""
DEFAULT: Runtime = litert_lm.RUNTIME
"""The runtime of edgekit convert's artifacts and of this computer's engine (edgekit.engine);
a model file or a runner binary no runtime recognises is refused with its message."""


def for_model(path: Path, notes: list[str] | None = None) -> Runtime:
    """The runtime that loads model file `path`, after its `check_model`; InputError (naming
    what is wrong) for a file none loads (the default runtime's refusal)."""
    runtime = next((r for r in RUNTIMES if r.is_model(path)), DEFAULT)
    runtime.check_model(path, notes)
    return runtime


def named(name: str) -> Runtime:
    """The runtime whose `name` is `name` (a RunnerProbe's `runtime`); KeyError if none."""
    for runtime in RUNTIMES:
        if runtime.name == name:
            return runtime
    raise KeyError(name)


def for_protocol(protocol: Protocol) -> Runtime:
    """The runtime whose runners speak `protocol` (each protocol belongs to one runtime)."""
    return next(r for r in RUNTIMES if protocol in r.protocols)


def for_probe(probe: RunnerProbe) -> Runtime:
    """The runtime of a probed runner: the one the probe names, or, for a probe.json or result
    written before a second runtime existed (it names none), the one whose protocol it speaks."""
    return for_protocol(probe.protocol) if isinstance(probe.runtime, UnsetType) else named(probe.runtime)
