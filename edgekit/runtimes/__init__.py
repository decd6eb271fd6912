"""The on-device runtimes edgekit drives, each one implementation of `base.Runtime`.

RUNTIMES           every runtime, in the order a runner binary is probed
DEFAULT            the runtime of a model file no runtime recognises, and of a binary none does
for_model(path)    the runtime whose model format `path` is (its header checked)
named(name)        the runtime a probe or result names
for_protocol(p)    the runtime whose runners speak protocol `p`
"""

from __future__ import annotations

from pathlib import Path

from edgekit.runtimes.base import Protocol, Runtime
from edgekit.runtimes.litert_lm import LITERT_LM
from edgekit.runtimes.llama_cpp import LLAMA_CPP

RUNTIMES: tuple[Runtime, ...] = (LITERT_LM, LLAMA_CPP)
"""In probe order: an absl `--helpfull` first, then llama.cpp's `--help`."""
DEFAULT: Runtime = LITERT_LM


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
