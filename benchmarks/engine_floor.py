"""The LiteRT-LM engine's scoring fault, and edgekit's correction of it, against the artifact's own model.

For one `.litertlm` and its fp32 checkpoint, scores the built-in "report" text
(edgekit.convert.nll, 1024 continuation tokens) four ways and prints the NLL gap vs
fp32 PyTorch, overall and by position in the continuation:

- engine, uncorrected: LiteRT-LM's `Session.run_prefill` + `run_text_scoring` as they
  are (litert-lm-api 0.18.1 scores as if the prompt's second-to-last token were deleted);
- engine, as edgekit scores: the scoring `nll.detect_scoring` finds, and its correction
  (on 0.18.1, the last prompt token prefilled a second time): what `edgekit eval` and
  `edgekit convert` report;
- interpreter: the bundle's own TFLite model, its `prefill_128` and `decode` signatures
  run by ai-edge-litert's interpreter the way the engine's executor says it runs them
  (google-ai-edge/LiteRT-LM runtime/executor/llm_litert_compiled_model_executor.cc, read
  at 004ee26c, as litert-lm-api 0.18.1 ships its runtime compiled: the prompt minus its last
  token prefilled at positions 0..N-1, padding at position 0 and masked, the last token
  decoded at position N, then one continuation token per decode step);
- interpreter, positions + 1: the same with the prefilled tokens at positions 1..N (an
  earlier, wrong model of the engine's fault, kept to show it is wrong).

Needs an artifact with a `prefill_128` signature (edgekit's default) and
`edgekit example gemma3-270m DIR`. About 3 minutes on 2 cores.

    .venv/bin/python benchmarks/engine_floor.py ARTIFACT.litertlm MODEL_DIR
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.convert import nll
from edgekit.convert.pipeline import bundled_tflite, load_reference
from edgekit.convert.windows import split_windows, tokenize_windows
from edgekit.engine import open_engine

PREFILL = "prefill_128"
# The value the engine fills masked positions with (runtime/executor/litert_compiled_model_executor_utils.cc,
# InitializeAttentionMask, fp32 masks).
MASKED = -0.7 * float(np.finfo(np.float32).max)
BUCKETS = ((0, 1), (1, 2), (2, 4), (4, 20), (20, 10_000))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


class Interpreter:
    """The bundle's TFLite model, run signature by signature as the engine's executor does."""

    def __init__(self, tflite: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter as TflInterpreter

        self._it = TflInterpreter(str(tflite), num_threads=2)
        self._decode = self._it.get_signature_runner("decode")
        self._prefill = self._it.get_signature_runner(PREFILL)
        details = self._decode.get_input_details()
        self._shapes = {k: tuple(v["shape"]) for k, v in details.items() if k.startswith("kv_cache")}
        self._cache_len = int(details["mask"]["shape"][-1])
        self._prefill_len = int(self._prefill.get_input_details()["tokens"]["shape"][-1])

    def score(self, seq: list[int], context: int, shift: int) -> np.ndarray:
        """NLL of seq[context+1:] given seq[:context+1] (seq[0] is BOS); prefill positions start at `shift`."""
        cache = {k: np.zeros(s, np.float32) for k, s in self._shapes.items()}
        head = seq[:context]  # everything but the last prompt token, which stays pending
        tokens = np.zeros((1, self._prefill_len), np.int32)
        positions = np.zeros(self._prefill_len, np.int32)
        tokens[0, : len(head)] = head
        positions[: len(head)] = np.arange(len(head)) + shift
        mask = np.full((1, 1, self._prefill_len, self._cache_len), MASKED, np.float32)
        for row, pos in enumerate(positions[: len(head)]):
            mask[0, 0, row, : pos + 1] = 0.0
        out = self._prefill(tokens=tokens, input_pos=positions, mask=mask, **cache)
        cache = {k: out[k] for k in cache}
        nlls = []
        for i in range(context, len(seq) - 1):
            step_mask = np.where(np.arange(self._cache_len) <= i, 0.0, MASKED).astype(np.float32)
            out = self._decode(
                tokens=np.array([[seq[i]]], np.int32),
                input_pos=np.array([i], np.int32),
                mask=step_mask.reshape(1, 1, 1, -1),
                **cache,
            )
            cache = {k: out[k] for k in cache}
            nlls.append(-_log_softmax(np.asarray(out["logits"][0, -1], np.float64))[seq[i + 1]])
        return np.asarray(nlls)


def profile(label: str, got: list[np.ndarray], ref: list[np.ndarray]) -> str:
    diffs = [g - r for g, r in zip(got, ref, strict=True)]
    flat = np.concatenate(diffs)
    parts = []
    for lo, hi in BUCKETS:
        values = np.concatenate([d[lo:hi] for d in diffs])
        name = f"{lo}" if hi == lo + 1 else f"{lo}-{hi - 1}" if hi < 10_000 else f"{lo}+"
        parts.append(f"pos {name}: {values.mean():+.3f}")
    return f"{label:26s} gap {flat.mean():+.4f} ±{flat.std() / np.sqrt(flat.size):.4f} | " + ", ".join(parts)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    artifact, model_dir = Path(sys.argv[1]), Path(sys.argv[2])
    model, _ = load_reference(model_dir)
    text = nll.builtin_text(nll.Section.REPORT)
    with open_engine(artifact, threads=2) as engine:
        bos = engine.bos_token_id
        windows = tokenize_windows(
            split_windows(text.documents),
            engine.tokenize,
            max_tokens=1024,
            max_window_tokens=512,
            round_trips=lambda i: list(engine.tokenize(engine.detokenize([i]))) == [i],
        )
        raw_scores = nll.engine_nll(engine, windows, nll.EngineScoring.EXACT)
        scoring = nll.detect_scoring(engine, windows)
        engine_scores = nll.engine_nll(engine, windows, scoring)
    ref = nll.reference_nll(model, bos, windows)
    seqs = [[bos, *w.context_ids, *w.continuation_ids] for w in windows]
    with tempfile.TemporaryDirectory(prefix="edgekit-floor-") as tmp:
        interp = Interpreter(bundled_tflite(artifact, Path(tmp)))
        exact: list[Any] = [interp.score(s, len(w.context_ids), 0) for s, w in zip(seqs, windows, strict=True)]
        shifted: list[Any] = [interp.score(s, len(w.context_ids), 1) for s, w in zip(seqs, windows, strict=True)]
    tokens = sum(len(w.continuation_ids) for w in windows)
    print(f"{artifact.name}: NLL gap vs fp32 PyTorch, {tokens} tokens in {len(windows)} windows of the report text")
    print("(pos = position in the continuation; pos 0 is scored from the last prompt token's decode step)")
    print(profile("engine, uncorrected", raw_scores, ref))
    print(profile(f"engine ({scoring.value})", engine_scores, ref))
    print(profile("interpreter", exact, ref))
    print(profile("interpreter, positions + 1", shifted, ref))
    raw = np.concatenate([np.abs(e - x) for e, x in zip(raw_scores, exact, strict=True)]).mean()
    far = np.concatenate([np.abs(e - x) for e, x in zip(engine_scores, exact, strict=True)]).mean()
    print(f"mean |engine - interpreter|: uncorrected {raw:.4f} nats/token, as edgekit scores {far:.4f}")
    print("reproduce: " + shlex.join([sys.executable, "benchmarks/engine_floor.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
