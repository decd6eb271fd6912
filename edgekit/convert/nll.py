"""The engine-level NLL gap: how much worse the artifact predicts real text than the fp32 PyTorch model.

For each window of a text (a context, then a continuation, no chat template):

* the LiteRT-LM engine loads the artifact, `Session.run_prefill([context])` (the engine
  prepends BOS) and `Session.run_text_scoring([continuation], store_token_lengths=True)`,
  which returns the log-likelihood of every continuation token given everything before
  it (runtime/engine/pipeline.cc `ScoreCustomSampling`, temperature 1.0, per
  runtime/core/session_basic.cc `RunTextScoringAsync`; LiteRT-LM 0.18, litert_lm/session.py);
* PyTorch scores the very same token ids ([BOS] + context ids + continuation ids, tokenized
  by the engine's own tokenizer) with one forward pass.

gap = mean NLL per continuation token (engine) - the same for PyTorch, in nats/token.
exp(gap) is the perplexity ratio. The text is prose no edgekit file contains: by default
news articles (English, the Lee corpus) and Russian literary prose, both read at run time
from files inside the pinned `gensim` wheel (gensim/test/test_data/), each checked against
its sha256. Two disjoint sections: "selection" (for choosing recipes) and "report" (for
figures shown to users and floors); or a user's own text file.

The windows are cut in windows.py. This module measures; it does not judge (floors.judge
compares a gap with its ceiling; evaluate.py is `edgekit eval`).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib.metadata
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifact import EvalTextRecord, NllGap, sha256_file
from edgekit.convert.windows import (
    CONTEXT_WORDS,
    MIN_CONTINUATION_WORDS,
    TokenWindow,
    split_windows,
    tokenize_windows,
)
from edgekit.errors import DependencyError, EdgekitError, FidelityError, InputError

TEXT_PACKAGE = "gensim"
TEXT_PACKAGE_VERSION = "4.4.0"
TEXT_INSTALL = f"pip install {TEXT_PACKAGE}=={TEXT_PACKAGE_VERSION} (part of edgekit[convert])"

# Files inside the gensim 4.4.0 wheel, with their sha256 (taken from that wheel).
# lee_background.cor: 300 ABC news articles, one a line (gensim's "Lee background corpus").
# lee.cor: the 50 different ABC news articles of Lee et al.'s similarity study, one a line.
# crime-and-punishment.txt: the opening paragraphs of Dostoevsky's novel, in Russian.
_FILES = {
    "lee_background.cor": "5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb",
    "lee.cor": "a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e",
    "crime-and-punishment.txt": "6bb0a945079de29a063e68025a71ddbd7134e6eb853b502f2cca1a6248ea6e3f",
}
_DATA_DIR = "gensim/test/test_data"

DEFAULT_MAX_TOKENS = 1024
"""Scored tokens per measurement in `edgekit convert` (about 15 s on 2 cores for a 270M INT4 model)."""


class Section(str, enum.Enum):
    """Which part of the built-in text: one for choosing recipes, a disjoint one for reporting."""

    SELECTION = "selection"
    REPORT = "report"


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalText:
    """A text to measure on: documents (each a string) plus where they came from."""

    documents: tuple[str, ...]
    source: EvalTextRecord
    """Provenance as the manifest records it: its name, kind, files with sha256, package version or path."""

    @property
    def name(self) -> str:
        """ "builtin:<section>" or "file:<file name>"."""
        return self.source.name


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # lee.cor is ISO-8859-1


def _package_file(name: str) -> tuple[Path, str]:
    try:
        dist = importlib.metadata.distribution(TEXT_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise DependencyError(f"the built-in evaluation text comes from {TEXT_PACKAGE}: {TEXT_INSTALL}") from None
    path = Path(str(dist.locate_file(f"{_DATA_DIR}/{name}")))
    if not path.is_file():
        raise DependencyError(f"{path} is missing from the installed {TEXT_PACKAGE}: {TEXT_INSTALL}")
    digest = sha256_file(path)
    if digest != _FILES[name]:
        raise DependencyError(
            f"{path} has sha256 {digest[:12]}…, not the pinned {_FILES[name][:12]}… of {TEXT_PACKAGE} "
            f"{TEXT_PACKAGE_VERSION} (installed: {dist.version}): {TEXT_INSTALL}"
        )
    return path, dist.version


def _interleave(*lists: Sequence[str]) -> list[str]:
    out: list[str] = []
    for i in range(max(len(x) for x in lists)):
        out.extend(x[i] for x in lists if i < len(x))
    return out


def builtin_text(section: Section | str = Section.REPORT) -> EvalText:
    """The built-in text of `section`: news + Russian prose from the pinned gensim wheel.

    selection: the 300 Lee background articles + Russian paragraphs 1, 3, 5;
    report: the 50 other Lee articles + Russian paragraphs 2, 4. Languages alternate so
    any token budget sees both.
    """
    section = Section(section)
    news_file = "lee_background.cor" if section is Section.SELECTION else "lee.cor"
    news_path, version = _package_file(news_file)
    ru_path, _ = _package_file("crime-and-punishment.txt")
    news = [line.strip() for line in _read_text(news_path).splitlines() if line.strip()]
    paragraphs = [line.strip() for line in _read_text(ru_path).splitlines() if line.strip()]
    russian = paragraphs[0::2] if section is Section.SELECTION else paragraphs[1::2]
    return EvalText(
        documents=tuple(_interleave(russian, news)),
        source=EvalTextRecord(
            name=f"builtin:{section.value}",
            kind="package",
            package=f"{TEXT_PACKAGE}=={version}",
            section=section.value,
            files={
                f"{_DATA_DIR}/{news_file}": _FILES[news_file],
                f"{_DATA_DIR}/crime-and-punishment.txt": _FILES["crime-and-punishment.txt"],
            },
            languages=("en", "ru"),
        ),
    )


def text_from_file(path: Path | str) -> EvalText:
    """A user's UTF-8 text file; paragraphs (separated by blank lines) are documents."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"evaluation text {path} does not exist", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"evaluation text {path} is not UTF-8 text: convert it to UTF-8", path=path) from None
    documents = tuple(" ".join(p.split()) for p in text.split("\n\n") if p.strip())
    if sum(len(d.split()) for d in documents) < CONTEXT_WORDS + MIN_CONTINUATION_WORDS:
        raise InputError(
            f"evaluation text {path} is too short: give at least {CONTEXT_WORDS + MIN_CONTINUATION_WORDS} words "
            f"of prose (a few hundred make a steadier figure)",
            path=path,
        )
    return EvalText(
        documents=documents,
        source=EvalTextRecord(
            name=f"file:{path.name}",
            kind="file",
            path=str(path.resolve()),
            sha256=hashlib.sha256(text.encode()).hexdigest(),
        ),
    )


def check_same_tokenizer(windows: Sequence[TokenWindow], tokenizer: Any, model: Any, artifact: str) -> None:
    """InputError if the reference cannot score the artifact's token ids as the same tokens."""
    vocab = int(getattr(model.config, "vocab_size", 0) or 0)
    top = max(max(w.context_ids + w.continuation_ids) for w in windows)
    if vocab and top >= vocab:
        raise InputError(
            f"{artifact} produces token id {top}, beyond the reference's vocabulary of {vocab}: "
            f"the reference is not the model this artifact was made from"
        )
    if tokenizer is None:
        return
    for w in windows[:4]:
        # The engine tokenized context and continuation separately: so does the reference here.
        ids = tuple(tokenizer(w.context, add_special_tokens=False)["input_ids"]) + tuple(
            tokenizer(w.continuation, add_special_tokens=False)["input_ids"]
        )
        if ids != w.context_ids + w.continuation_ids:
            raise InputError(
                f"{artifact} tokenizes text differently from the reference's tokenizer: the reference is "
                f"not the model this artifact was made from (an artifact converted with --vocab-from is "
                f"compared by bits per byte when its manifest is beside it)"
            )


class EngineScoring(str, enum.Enum):
    """How the installed LiteRT-LM engine's `run_text_scoring` treats the prefilled prompt.

    litert-lm-api 0.18.1 scores a continuation as if the prompt's second-to-last token had
    been deleted (measured against fp32 PyTorch on an fp32 artifact: exact to 1e-6 at every
    position, for prompts of 4 to 37 tokens, with one or two `run_prefill` calls);
    generation after the same prefill is exact. litert-lm-api-nightly 0.19.0.dev20261026
    scores the prompt as it is. Which one is installed is found by `detect_scoring`, not
    by version number.
    """

    EXACT = "exact"
    """The continuation is scored given the prompt as prefilled."""
    DROPS_SECOND_TO_LAST = "drops-second-to-last"
    """The prompt's second-to-last token is skipped: edgekit prefills the last token twice."""


def _score(engine: Any, prefills: Sequence[str], target: str) -> tuple[np.ndarray, list[int]]:
    """Per-token NLL (nats) of `target` after `prefills` (one `run_prefill` each), and each prefill's token count."""
    import litert_lm

    session = engine.create_session(
        apply_prompt_template=False, sampler_config=litert_lm.SamplerConfig(top_k=1), max_output_tokens=1
    )
    counts = []
    try:
        for text in prefills:
            session.run_prefill([text])
            counts.append(session.get_benchmark_info().last_prefill_token_count)
        responses = session.run_text_scoring([target], store_token_lengths=True)
    except RuntimeError as exc:
        raise EdgekitError(f"the LiteRT-LM engine failed to score text: {exc}") from exc
    finally:
        session.close()
    scores = responses.token_scores[0] if responses.token_scores else []
    return -np.asarray(scores, np.float64), counts


def _prefills(engine: Any, texts: Sequence[str], last_id: int, scoring: EngineScoring) -> list[str]:
    """What to prefill (one `run_prefill` each) so that `scoring`'s engine scores after exactly `texts`.

    `last_id` is the last token of the last text; it must come back as itself from its own text.
    """
    if scoring is EngineScoring.EXACT:
        return list(texts)
    # The engine skips the prompt's second-to-last token (one token of the whole prompt,
    # however many calls): give it the last one twice, so the copy it skips is the extra one.
    return [*texts, engine.detokenize([last_id])]


_ENGINE_PIN = "0.18.1"
"""litert-lm-api as edgekit pins it (pyproject.toml)."""
PROBE_POSITIONS = 16
"""Continuation tokens `detect_scoring` compares."""
DECISIVE_RATIO = 4.0
"""How many times more inconsistent the wrong scoring must be than the right one for `detect_scoring` to decide."""
PROBE_WINDOWS = 3
"""Windows `detect_scoring` tries before it gives up deciding."""


def detect_scoring(engine: Any, windows: Sequence[TokenWindow]) -> EngineScoring:
    """Which EngineScoring the engine has, told from the engine alone, whatever the artifact's precision.

    An engine that scores exactly gives the same score to continuation token i+1 whether
    token i was scored before it (prefill context, score c0 c1 ...) or prefilled (prefill
    context + c0, score c1 ...). Each hypothesis prefills the way it would be corrected,
    and the right one is consistent; the wrong one scores two different prompts. A context
    ending in one token twice cannot tell them apart (either copy skipped leaves the same
    prompt) and is passed over. FidelityError when in PROBE_WINDOWS windows neither is
    clearly more consistent, or no window has a continuation whose first token can be
    prefilled on its own.
    """
    tried: list[dict[EngineScoring, float]] = []
    for w in windows:
        if len(tried) == PROBE_WINDOWS:
            break
        if len(w.context_ids) >= 2 and w.context_ids[-1] == w.context_ids[-2]:
            continue
        c0 = w.continuation_ids[0]
        c0_text = engine.detokenize([c0])
        rest = w.continuation[len(c0_text) :]
        if not c0_text or not w.continuation.startswith(c0_text) or list(engine.tokenize(c0_text)) != [c0]:
            continue
        rest_ids = tuple(engine.tokenize(rest)) if rest else ()
        if rest_ids != w.continuation_ids[1:] or len(rest_ids) < 4:
            continue
        n = min(PROBE_POSITIONS, len(rest_ids))
        inconsistency = {}
        for scoring in EngineScoring:
            whole, _ = _score(engine, _prefills(engine, [w.context], w.context_ids[-1], scoring), w.continuation)
            after, _ = _score(engine, _prefills(engine, [w.context, c0_text], c0, scoring), rest)
            inconsistency[scoring] = float(np.abs(whole[1 : n + 1] - after[:n]).mean())
        best = min(inconsistency, key=inconsistency.__getitem__)
        other = max(inconsistency, key=inconsistency.__getitem__)
        if inconsistency[other] > DECISIVE_RATIO * inconsistency[best]:
            return best
        tried.append(inconsistency)
    if tried:
        raise FidelityError(
            f"cannot tell how the installed LiteRT-LM engine scores text ({len(tried)} windows; mean inconsistency "
            + ", ".join(f"{k.value} {v:.2g}" for k, v in tried[-1].items())
            + f" nats/token in the last): reinstall litert-lm-api=={_ENGINE_PIN}"
        )
    raise FidelityError("no window of the evaluation text can probe the engine's scoring: give more prose")


def engine_nll(engine: Any, windows: Sequence[TokenWindow], scoring: EngineScoring) -> list[np.ndarray]:
    """Per-token NLL (nats) of each window's continuation under the LiteRT-LM `engine`, scored exactly.

    `scoring` (detect_scoring) says how to prefill so that the engine scores after
    exactly [BOS] + the context.
    """
    out = []
    for w in windows:
        scores, counts = _score(engine, _prefills(engine, [w.context], w.context_ids[-1], scoring), w.continuation)
        expected = [len(w.context_ids) + 1] + [1] * (len(counts) - 1)
        if counts != expected or len(scores) != len(w.continuation_ids):
            raise FidelityError(
                f"the LiteRT-LM engine tokenized a window differently (prefilled {counts} tokens, expected "
                f"{expected}; scored {len(scores)}, expected {len(w.continuation_ids)})"
            )
        out.append(scores)
    return out


def reference_nll(model: Any, bos_id: int, windows: Sequence[TokenWindow]) -> list[np.ndarray]:
    """Per-token NLL (nats) of each window's continuation under PyTorch `model` (one forward per window)."""
    import torch

    out = []
    with torch.no_grad():
        for w in windows:
            seq = [bos_id, *w.context_ids, *w.continuation_ids]
            logits = model(torch.tensor([seq], dtype=torch.long), use_cache=False).logits[0]
            n = len(w.continuation_ids)
            pred = logits[-n - 1 : -1].double()
            logp = torch.log_softmax(pred, dim=-1)
            target = torch.tensor(w.continuation_ids, dtype=torch.long)
            out.append(-logp.gather(1, target[:, None])[:, 0].numpy())
    return out


def measure(
    artifact: Path | str,
    model: Any,
    *,
    text: EvalText | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    threads: int | None = None,
    reference_tokenizer: Any = None,
    max_window_tokens: int = 512,
    max_context_tokens: int | None = None,
    own_tokenization: bool = False,
) -> NllGap:
    """NLL gap of the `.litertlm` at `artifact` against PyTorch `model` (fp32, eval) on `text`.

    With `own_tokenization` (an artifact whose vocabulary was trimmed, vocab.py), the reference
    scores its own tokenization (`reference_tokenizer`, required) of each window's text
    rather than the artifact's ids: the two compare by bits per byte over the same text.

    `text` defaults to the built-in "report" section. The gap is measured, not judged
    (floors.judge compares it with a ceiling). With `reference_tokenizer`
    (the model's Hugging Face tokenizer), InputError if it splits text differently from
    the artifact's tokenizer (the two are not the same model). `max_window_tokens` must
    not exceed the artifact's KV cache, nor `max_context_tokens` its context_room. Raises
    EdgekitError if the engine fails.
    """
    from edgekit.engine import open_engine

    if max_tokens < 1:
        raise InputError(f"max tokens must be at least 1, got {max_tokens}")
    text = text or builtin_text(Section.REPORT)
    with open_engine(artifact, threads=threads) as engine:
        bos = engine.bos_token_id
        if bos is None:
            raise FidelityError(f"{artifact} names no BOS token: the NLL gap needs one")
        windows = tokenize_windows(
            split_windows(text.documents),
            engine.tokenize,
            max_tokens=max_tokens,
            max_window_tokens=max_window_tokens,
            max_context_tokens=max_context_tokens,
            round_trips=lambda i: list(engine.tokenize(engine.detokenize([i]))) == [i],
        )
        if not windows:
            raise InputError(f"the evaluation text {text.name} yields no window to score: give more prose")
        if own_tokenization:
            if reference_tokenizer is None:
                raise ValueError("own_tokenization needs the reference's tokenizer")
            ref_windows = retokenized(windows, reference_tokenizer)
            ref_bos = reference_tokenizer.bos_token_id
            ref_bos = int(ref_bos if ref_bos is not None else model.config.bos_token_id)
        else:
            check_same_tokenizer(windows, reference_tokenizer, model, str(artifact))
            ref_windows, ref_bos = windows, bos
        scoring = detect_scoring(engine, windows)
        got = engine_nll(engine, windows, scoring)
    ref = reference_nll(model, ref_bos, ref_windows)
    artifact_bytes = bundled_byte_piece_ids(Path(artifact))
    reference_bytes = byte_piece_ids_of(reference_tokenizer) if own_tokenization else artifact_bytes
    return summarize(
        got,
        ref,
        text=text,
        scoring=scoring,
        windows=windows,
        reference_windows=ref_windows if own_tokenization else None,
        artifact_byte_ids=artifact_bytes,
        reference_byte_ids=reference_bytes,
    )


def retokenized(windows: Sequence[TokenWindow], tokenizer: Any) -> list[TokenWindow]:
    """The same windows (the same context and continuation text), in `tokenizer`'s ids."""

    def ids(text: str) -> tuple[int, ...]:
        return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])

    return [dataclasses.replace(w, context_ids=ids(w.context), continuation_ids=ids(w.continuation)) for w in windows]


_BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")


def bundled_byte_piece_ids(bundle: Path) -> set[int] | None:
    """The ids the tokenizer inside a `.litertlm` writes bytes with (_byte_piece_ids); None without a tokenizer.json."""
    return _byte_piece_ids(_bundled_tokenizer_json(bundle))


def byte_piece_ids_of(tokenizer: Any) -> set[int] | None:
    """The ids a Hugging Face tokenizer writes bytes with (see _byte_piece_ids); None if it is not a fast tokenizer."""
    return _byte_piece_ids(_tokenizer_json_of(tokenizer))


def _byte_piece_ids(tokenizer_json: dict[str, Any] | None) -> set[int] | None:
    """The ids a tokenizer.json writes bytes with: byte_fallback's <0x00>..<0xFF>, or a byte-level
    BPE's 256 one-byte base symbols. None when there is no tokenizer.json to tell."""
    if tokenizer_json is None:
        return None
    model = tokenizer_json.get("model") or {}
    vocab = model.get("vocab")
    if not isinstance(vocab, dict):
        return set()
    if model.get("byte_fallback"):
        return {int(i) for p, i in vocab.items() if _BYTE_PIECE.fullmatch(p)}
    if "ByteLevel" in json.dumps(tokenizer_json.get("pre_tokenizer")):
        from tokenizers import pre_tokenizers

        alphabet = set(pre_tokenizers.ByteLevel.alphabet())
        return {int(i) for p, i in vocab.items() if p in alphabet}
    return set()


def _tokenizer_json_of(tokenizer: Any) -> dict[str, Any] | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    data: dict[str, Any] = json.loads(backend.to_str())
    return data


def _bundled_tokenizer_json(bundle: Path) -> dict[str, Any] | None:
    """The Hugging Face tokenizer.json inside a `.litertlm` (its HF_Tokenizer_Zlib section), None if it has none.

    Read as litert_lm_builder's litertlm_peek reads the header; the section is zlib data
    behind an 8-byte size, or bare zlib (litert_torch's litertlm_bundle._extract_hf_tokenizer).
    """
    import io
    import zlib

    from litert_lm_builder import litertlm_header_schema_py_generated as schema
    from litert_lm_builder import litertlm_peek

    try:
        header = litertlm_peek.read_litertlm_header(str(bundle), io.StringIO())
        sections = header.SectionMetadata()
        with open(bundle, "rb") as f:
            for i in range(sections.ObjectsLength() if sections else 0):
                obj = sections.Objects(i)
                if obj is None or obj.DataType() != schema.AnySectionDataType.HF_Tokenizer_Zlib:
                    continue
                f.seek(obj.BeginOffset())
                blob = f.read(obj.EndOffset() - obj.BeginOffset())
                try:
                    raw = zlib.decompress(blob[8:])
                except zlib.error:
                    raw = zlib.decompress(blob)
                data: dict[str, Any] = json.loads(raw)
                return data
    except (OSError, ValueError, zlib.error):
        return None
    return None


def summarize(
    artifact_nll: Sequence[np.ndarray],
    reference_nll: Sequence[np.ndarray],
    *,
    text: EvalText,
    scoring: EngineScoring | None = None,
    windows: Sequence[TokenWindow] | None = None,
    reference_windows: Sequence[TokenWindow] | None = None,
    artifact_byte_ids: set[int] | None = None,
    reference_byte_ids: set[int] | None = None,
) -> NllGap:
    """Token-weighted means and the gap, not judged (floors.judge does); FidelityError if it is not finite.

    With `windows` (what was scored), also bits per byte, tokens per byte and the byte-fallback
    share of each side. With `reference_windows` (the reference scored its own tokenization of
    the same text), the gap is (total artifact NLL - total reference NLL) / artifact tokens,
    its ± from the per-window totals.
    """
    a = np.concatenate(list(artifact_nll))
    r = np.concatenate(list(reference_nll))
    if not (np.isfinite(a).all() and np.isfinite(r).all()):
        raise FidelityError(
            "the converted model gives a token zero probability (infinite NLL): the conversion is broken"
        )
    if reference_windows is None:
        diff = a - r
        gap = float(diff.mean())
        stderr = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    else:
        per_window = np.array([x.sum() - y.sum() for x, y in zip(artifact_nll, reference_nll, strict=True)])
        gap = float(per_window.sum() / len(a))
        n = len(per_window)
        stderr = float(per_window.std(ddof=1) * math.sqrt(n) / len(a)) if n > 1 else float("nan")
    measured = NllGap(
        artifact_nll=float(a.mean()),
        reference_nll=float(r.mean()),
        gap_nats_per_token=gap,
        gap_stderr=stderr,
        tokens=len(a),
        windows=len(artifact_nll),
        text=text.source,
        perplexity_ratio=math.exp(gap),
        engine_scoring=scoring.value if scoring is not None else None,
    )
    if windows is None:
        return measured
    ref_windows = reference_windows if reference_windows is not None else windows
    n_bytes = sum(len(w.continuation.encode("utf-8")) for w in windows)

    def fallback(ws: Sequence[TokenWindow], ids: set[int] | None) -> float | None:
        if ids is None:
            return None
        return sum(sum(1 for i in w.continuation_ids if i in ids) for w in ws) / n_bytes

    artifact_bpb = float(a.sum()) / n_bytes / math.log(2)
    reference_bpb = float(r.sum()) / n_bytes / math.log(2)
    return dataclasses.replace(
        measured,
        bytes=n_bytes,
        artifact_bits_per_byte=artifact_bpb,
        reference_bits_per_byte=reference_bpb,
        bits_per_byte_gap=artifact_bpb - reference_bpb,
        artifact_tokens_per_byte=len(a) / n_bytes,
        reference_tokens_per_byte=len(r) / n_bytes,
        artifact_byte_fallback_share=fallback(windows, artifact_byte_ids),
        reference_byte_fallback_share=fallback(ref_windows, reference_byte_ids),
        same_tokenizer=reference_windows is None,
        reference_tokens=len(r),
    )
