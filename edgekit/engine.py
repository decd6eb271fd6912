"""Run a prompt through the LiteRT-LM engine on this computer (`litert-lm-api`)."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from edgekit.errors import EdgekitError


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


def run_prompt(
    model_path: Path,
    prompt: str,
    *,
    max_output_tokens: int = 32,
    threads: int | None = None,
    apply_prompt_template: bool = True,
) -> PromptRun:
    """Load `model_path` (CPU backend), answer `prompt` greedily, and return text and stats.

    The engine's XNNPACK weight cache goes to a temp folder that is removed afterwards,
    so nothing is left beside the model. Raises EdgekitError if the engine fails.
    """
    import litert_lm

    litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
    with tempfile.TemporaryDirectory(prefix="edgekit-xnnpack-") as cache_dir:
        t0 = time.perf_counter()
        try:
            engine = litert_lm.Engine(
                str(model_path),
                backend=litert_lm.Backend.CPU(thread_count=threads),
                cache_dir=cache_dir,
                enable_benchmark=True,
            )
        except RuntimeError as exc:
            raise EdgekitError(f"the LiteRT-LM engine cannot load {model_path}: {exc}") from exc
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
        finally:
            engine.close()
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
