"""Run a prompt through the LiteRT-LM engine on this computer (`litert-lm-api`)."""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError

NAME = "LiteRT-LM"
"""The engine this module runs, as messages name it ("this computer's LiteRT-LM CPU engine")."""
RECORD_NAME = "litert_lm (litert-lm-api)"
"""`runner.engine` of a local run's result."""

_ENGINES = threading.RLock()
"""One LiteRT-LM engine at a time in this process: battery-bench and deploy check each phone's
smoke answer with this computer's engine from one thread per phone, and litert-lm-api makes
no promise that two engines may be created or run at once. (A parallel lab test once died
with SIGSEGV and no Python traceback; overlapping engines are the one native part those
threads share, so they are serialized. Not proven to be the cause.)"""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PromptRun:
    """One prompt's answer and the engine's own counters (tokens, tokens/s, seconds)."""

    text: str
    init_s: float
    prefill_tokens: int
    prefill_tokens_per_s: float
    decode_tokens: int
    decode_tokens_per_s: float
    ttft_s: float
    wall_s: float


_QUIET = threading.Event()
"""Set by quiet_engine_logs: engines opened from then on log only LiteRT-LM's errors."""


def quiet_engine_logs() -> None:
    """Show only LiteRT-LM's errors, process-wide, from the next engine this process opens (by
    default LiteRT-LM also logs INFO and WARNING lines to fd 2).

    For a program's entry point (edgekit's CLI calls it once as it starts): a library caller
    keeps the log level its process has. Nothing is imported here: importing LiteRT-LM takes
    about a second, which a command that opens no engine should not pay.
    """
    _QUIET.set()


@contextlib.contextmanager
def open_engine(
    model_path: Path | str, *, threads: int | None = None, max_num_tokens: int | None = None
) -> Iterator[Any]:
    """The LiteRT-LM engine for `model_path` (CPU, benchmark counters on).

    Its XNNPACK weight cache (~140 MB for a 270M model) goes to a temp folder removed
    with it, never beside the model. Raises EdgekitError if the model does not load. Other
    threads wait while it is open (_ENGINES). LiteRT-LM's log level is the process's,
    unless its entry point called quiet_engine_logs.
    """
    import litert_lm

    with _ENGINES, tempfile.TemporaryDirectory(prefix="edgekit-xnnpack-") as cache_dir:
        if _QUIET.is_set():
            litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
        try:
            engine = litert_lm.Engine(
                str(model_path),
                backend=litert_lm.Backend.CPU(thread_count=threads),
                cache_dir=cache_dir,
                enable_benchmark=True,
                max_num_tokens=max_num_tokens,
            )
        except RuntimeError as exc:
            raise EdgekitError(f"the LiteRT-LM engine cannot load {model_path}: {exc}") from exc
        try:
            yield engine
        finally:
            engine.close()


def greedy_session(engine: Any, *, max_output_tokens: int) -> Any:
    """A greedy (top-k 1) session of `engine` (from open_engine), answers capped at
    `max_output_tokens` tokens; the caller closes it."""
    import litert_lm

    return engine.create_session(sampler_config=litert_lm.SamplerConfig(top_k=1), max_output_tokens=max_output_tokens)


def run_prompt(
    model_path: Path,
    prompt: str,
    *,
    max_output_tokens: int = 32,
    threads: int | None = None,
    apply_prompt_template: bool = True,
) -> PromptRun:
    """Load `model_path` (CPU backend), answer `prompt` greedily, and return text and stats.

    Nothing is left beside the model (see open_engine). Raises EdgekitError if the engine fails.
    """
    import litert_lm

    t0 = time.perf_counter()
    with open_engine(model_path, threads=threads) as engine:
        init_s = time.perf_counter() - t0
        try:
            session = engine.create_session(
                apply_prompt_template=apply_prompt_template,
                sampler_config=litert_lm.SamplerConfig(top_k=1),
                max_output_tokens=max_output_tokens,
            )
            try:
                t1 = time.perf_counter()
                session.run_prefill([prompt])
                text = "".join(session.run_decode().texts)
                wall_s = time.perf_counter() - t1
                info = session.get_benchmark_info()
            finally:
                session.close()
        except RuntimeError as exc:
            raise EdgekitError(f"the LiteRT-LM engine failed to run {model_path}: {exc}") from exc
    return PromptRun(
        text=text,
        init_s=init_s,
        prefill_tokens=info.last_prefill_token_count,
        prefill_tokens_per_s=info.last_prefill_tokens_per_second,
        decode_tokens=info.last_decode_token_count,
        decode_tokens_per_s=info.last_decode_tokens_per_second,
        ttft_s=info.time_to_first_token_in_second,
        wall_s=wall_s,
    )
