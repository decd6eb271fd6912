"""Does the converted artifact compute what the PyTorch model computes?

Two independent looks at the artifact:

* its prefill/decode TFLite model (the one inside the `.litertlm`, unpacked) runs through
  `ai_edge_litert`'s interpreter token by token on fixed sequences, and its logits are
  compared with the PyTorch reference's at every position (top-1 agreement, max/mean
  absolute logit error), then both decode greedily from a prompt for N steps;
* the LiteRT-LM engine loads the bundle (CPU, cache in a temp folder) and generates,
  which proves the whole bundle — tokenizer and metadata included — runs.

Needs the `convert` extra.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifact import FidelityReport
from edgekit.engine import run_prompt
from edgekit.errors import EdgekitError, FidelityError

# Fixed, varied text; tokenized with the checkpoint's own tokenizer.
PROBE_TEXTS = (
    "The three cities are Lyon, Osaka and Quito.",
    "Classify the sentiment of this review: the battery lasts all day.",
    "Rewrite politely: send me the report now.",
    "Q: What is 12 plus 30? A:",
)
MAX_PROBE_TOKENS = 32
GREEDY_STEPS = 16
_MASKED = -1e9


def probe_sequences(tokenizer: Any, max_len: int) -> list[list[int]]:
    """Token sequences (BOS first, no pad token) from PROBE_TEXTS, each at most `max_len` long."""
    bos = tokenizer.bos_token_id
    pad = tokenizer.pad_token_id
    out = []
    for text in PROBE_TEXTS:
        ids = [t for t in tokenizer(text, add_special_tokens=False)["input_ids"] if t != pad]
        seq = ([bos] if bos is not None else []) + ids
        out.append(seq[:max_len])
    return out


class _TfliteLm:
    """Token-by-token decoding through the `decode` signature of a LiteRT-Torch export."""

    def __init__(self, tflite_path: Path, threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(str(tflite_path), num_threads=threads or 1)
        signatures = self._interpreter.get_signature_list()
        if "decode" not in signatures:
            raise FidelityError(f"artifact has no 'decode' signature (has: {', '.join(signatures)})")
        self._decode = self._interpreter.get_signature_runner("decode")
        details = self._decode.get_input_details()
        self._cache_shapes = {k: tuple(v["shape"]) for k, v in details.items() if k.startswith("kv_cache")}
        self.cache_length = int(details["mask"]["shape"][-1])
        self.reset()

    def reset(self) -> None:
        self._cache = {k: np.zeros(s, np.float32) for k, s in self._cache_shapes.items()}

    def step(self, token: int, pos: int) -> np.ndarray:
        mask = np.where(np.arange(self.cache_length) <= pos, 0.0, _MASKED).astype(np.float32)
        out = self._decode(
            tokens=np.array([[token]], np.int32),
            input_pos=np.array([pos], np.int32),
            mask=mask.reshape(1, 1, 1, -1),
            **self._cache,
        )
        self._cache = {k: out[k] for k in self._cache}
        logits: np.ndarray = np.asarray(out["logits"][0, -1], np.float64)
        return logits

    def logits(self, seq: list[int]) -> np.ndarray:
        self.reset()
        return np.stack([self.step(t, i) for i, t in enumerate(seq)])

    def greedy(self, prompt: list[int], steps: int) -> list[int]:
        self.reset()
        logits = None
        for i, t in enumerate(prompt):
            logits = self.step(t, i)
        out: list[int] = []
        for i in range(steps):
            assert logits is not None
            nxt = int(np.argmax(logits))
            out.append(nxt)
            logits = self.step(nxt, len(prompt) + i)
        return out


def _torch_logits(model: Any, seq: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(torch.tensor([seq], dtype=torch.long), use_cache=False)
    logits: np.ndarray = out.logits[0].double().numpy()
    return logits


def _torch_greedy(model: Any, prompt: list[int], steps: int) -> list[int]:
    seq = list(prompt)
    for _ in range(steps):
        seq.append(int(np.argmax(_torch_logits(model, seq)[-1])))
    return seq[len(prompt) :]


@dataclasses.dataclass(frozen=True, kw_only=True)
class _LogitStats:
    """Next-token agreement and logit error over every probed position."""

    agree: int
    positions: int
    max_abs_error: float
    mean_abs_error: float


def _compare_logits(lm: _TfliteLm, model: Any, seqs: list[list[int]]) -> _LogitStats:
    """Run every probe sequence through both models; FidelityError if the artifact fails to
    run or yields NaN/inf or constant logits."""
    agree = total = 0
    max_err = err_sum = 0.0
    for seq in seqs:
        try:
            got = lm.logits(seq)
        except (ValueError, RuntimeError) as exc:
            raise FidelityError(f"the converted model fails to run: {exc}") from exc
        ref = _torch_logits(model, seq)
        if not np.isfinite(got).all():
            raise FidelityError("the converted model yields NaN or infinite logits")
        if np.ptp(got, axis=-1).max() == 0.0:
            raise FidelityError("the converted model yields constant logits (every token scored the same)")
        diff = np.abs(got - ref)
        max_err = max(max_err, float(diff.max()))
        err_sum += float(diff.mean(axis=-1).sum())
        agree += int((got.argmax(-1) == ref.argmax(-1)).sum())
        total += len(seq)
    return _LogitStats(agree=agree, positions=total, max_abs_error=max_err, mean_abs_error=err_sum / total)


def _greedy_common_prefix(lm: _TfliteLm, model: Any, prompt: list[int]) -> int:
    """How many of GREEDY_STEPS greedy tokens the two models share before they first differ
    (after that they continue from different contexts, so only the common prefix counts)."""
    tfl_greedy = lm.greedy(prompt, GREEDY_STEPS)
    ref_greedy = _torch_greedy(model, prompt, GREEDY_STEPS)
    return next((i for i, (a, b) in enumerate(zip(tfl_greedy, ref_greedy, strict=True)) if a != b), GREEDY_STEPS)


def _engine_generates(bundle_path: Path, threads: int | None) -> tuple[int, str]:
    """(tokens, text) the LiteRT-LM engine generates from the bundle; FidelityError if none."""
    try:
        run = run_prompt(
            bundle_path,
            PROBE_TEXTS[0],
            max_output_tokens=GREEDY_STEPS,
            threads=threads,
            apply_prompt_template=False,
        )
    except EdgekitError as exc:
        raise FidelityError(str(exc)) from exc
    if run.decode_tokens < 1:
        raise FidelityError("the LiteRT-LM engine loaded the bundle but generated no token")
    return run.decode_tokens, run.text


def check(
    *,
    tflite_path: Path,
    bundle_path: Path | None,
    model: Any,
    tokenizer: Any,
    threads: int | None = None,
) -> FidelityReport:
    """Measure the artifact against `model` (PyTorch, eval mode); FidelityError if it cannot be measured.

    That is: the artifact does not load or run, yields NaN/inf or constant logits, or the
    engine generates nothing. The report is not judged (floors.judge compares top-1
    agreement with its floor).
    """
    try:
        lm = _TfliteLm(tflite_path, threads)
    except (ValueError, RuntimeError) as exc:
        raise FidelityError(f"the converted model does not load: {exc}") from exc
    seqs = probe_sequences(tokenizer, min(MAX_PROBE_TOKENS, lm.cache_length - GREEDY_STEPS))
    stats = _compare_logits(lm, model, seqs)
    same = _greedy_common_prefix(lm, model, seqs[0])
    engine_tokens, engine_text = _engine_generates(bundle_path, threads) if bundle_path is not None else (None, None)
    return FidelityReport(
        top1_agreement=stats.agree / stats.positions,
        max_abs_logit_error=stats.max_abs_error,
        mean_abs_logit_error=stats.mean_abs_error,
        greedy_agreement=same / GREEDY_STEPS,
        greedy_steps=GREEDY_STEPS,
        positions=stats.positions,
        engine_generated_tokens=engine_tokens,
        engine_text=engine_text,
    )
