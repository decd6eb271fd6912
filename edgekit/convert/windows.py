"""Windows of a text to score: a context (prefilled) then a continuation (scored), as text and as token ids.

    split_windows(documents) -> [Window]                        words (or, in text without spaces, characters)
    tokenize_windows(windows, tokenize, ...) -> [TokenWindow]   ids, cut to a token budget and a KV cache
    context_room(cache_length, prefill_lengths) -> int          the most context tokens a window may have

The NLL gap (nll.py) scores these.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

CONTEXT_WORDS = 24
"""Words of a window given to the model as context (prefilled, not scored)."""
CONTINUATION_WORDS = 80
"""Words of a window scored, at most."""
MIN_CONTINUATION_WORDS = 8
MAX_WORD_CHARS = 20
"""A text whose space-separated pieces are longer than this on average is written without spaces (CJK, Thai)."""
CONTEXT_CHARS = 40
"""Characters of a window's context in text written without spaces (about as many tokens as CONTEXT_WORDS)."""
CONTINUATION_CHARS = 120
MIN_CONTINUATION_CHARS = 12


@dataclasses.dataclass(frozen=True, kw_only=True)
class Window:
    """One scored span: `context` is prefilled, `continuation` scored, both plain text."""

    context: str
    continuation: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class TokenWindow:
    """A window's text and its token ids by the engine's tokenizer (BOS not included)."""

    context: str
    continuation: str
    context_ids: tuple[int, ...]
    continuation_ids: tuple[int, ...]


def spaceless(text: str) -> bool:
    """True for text written without spaces between words (Chinese, Japanese, Thai...): windows count characters."""
    words = text.split()
    return bool(words) and len("".join(words)) / len(words) > MAX_WORD_CHARS


def split_windows(
    documents: Sequence[str],
    *,
    context_words: int = CONTEXT_WORDS,
    continuation_words: int = CONTINUATION_WORDS,
) -> list[Window]:
    """Cut each document into consecutive windows of `context_words` + up to `continuation_words` words.

    The continuation keeps its leading space, so context + continuation is the original text.
    A trailing piece with fewer than MIN_CONTINUATION_WORDS scored words is dropped. A
    document written without spaces (`spaceless`) is cut by characters instead:
    CONTEXT_CHARS + up to CONTINUATION_CHARS, at least MIN_CONTINUATION_CHARS scored.
    """
    windows = []
    for doc in documents:
        if spaceless(doc):
            step = CONTEXT_CHARS + CONTINUATION_CHARS
            for start in range(0, len(doc), step):
                chars = doc[start : start + step]
                if len(chars) >= CONTEXT_CHARS + MIN_CONTINUATION_CHARS:
                    windows.append(Window(context=chars[:CONTEXT_CHARS], continuation=chars[CONTEXT_CHARS:]))
            continue
        words = doc.split()
        step = context_words + continuation_words
        for start in range(0, len(words), step):
            piece = words[start : start + step]
            if len(piece) < context_words + MIN_CONTINUATION_WORDS:
                continue
            windows.append(
                Window(context=" ".join(piece[:context_words]), continuation=" " + " ".join(piece[context_words:]))
            )
    return windows


def _move_last_unit(context: str, continuation: str) -> tuple[str, str]:
    """The context's last word (or, in text without spaces, its last character) moved to the continuation."""
    cut = context.rfind(" ")
    if cut <= 0 or len(context) - cut > MAX_WORD_CHARS:
        cut = len(context) - 1
    return context[:cut], context[cut:] + continuation


def _drop_first_unit(context: str) -> str:
    """The context without its first word (or, in text without spaces, its first character)."""
    cut = context.find(" ", 1)
    if cut <= 0 or cut > MAX_WORD_CHARS:
        cut = 1
    return context[cut:].lstrip(" ")


EXTRA_PREFILLS = 2
"""Single-token `run_prefill` calls after a window's context: detect_scoring's c0, and the 0.18.1 correction's copy."""


def context_room(cache_length: int, prefill_lengths: Sequence[int]) -> int:
    """The most context tokens (BOS not counted) a window may have in an artifact with this KV cache.

    The engine runs each `run_prefill` as at least one whole prefill signature and refuses
    one that would end past the cache ("Chosen prefill work group size exceeds available
    state entries", litert-lm-api 0.18.1, measured on a 128-entry cache with prefill 32:
    94 context tokens pass, 95 fail). The last of EXTRA_PREFILLS single-token prefills
    starts after BOS, the context and the others, and may take the longest signature.
    """
    return cache_length - max(prefill_lengths) - 1 - (EXTRA_PREFILLS - 1)


def tokenize_windows(
    windows: Sequence[Window],
    tokenize: Callable[[str], list[int]],
    *,
    max_tokens: int,
    max_window_tokens: int,
    max_context_tokens: int | None = None,
    round_trips: Callable[[int], bool] | None = None,
) -> list[TokenWindow]:
    """Token ids of windows, in order, until `max_tokens` continuation tokens are reached.

    A continuation that would pass `max_tokens` or make its window longer than
    `max_window_tokens` (BOS included) loses words at its end, so the text the engine
    tokenizes is always the text whose ids we hold. A context longer than
    `max_context_tokens` (context_room) loses words at its start. With `round_trips`, a context whose
    last token does not come back as itself from its own text (a byte-fallback piece)
    gives its last word or character to the continuation until it does: scoring on
    litert-lm-api 0.18.1 prefills that token a second time (EngineScoring).
    """
    out: list[TokenWindow] = []
    total = 0
    for w in windows:
        if total >= max_tokens:
            break
        context, continuation = w.context, w.continuation
        ctx = tuple(tokenize(context))
        while max_context_tokens is not None and len(ctx) > max_context_tokens and context:
            context = _drop_first_unit(context)
            ctx = tuple(tokenize(context)) if context else ()
        for _ in range(8):
            if round_trips is None or not ctx or round_trips(ctx[-1]):
                break
            context, continuation = _move_last_unit(context, continuation)
            ctx = tuple(tokenize(context)) if context else ()
        else:
            continue
        limit = min(max_window_tokens - 1 - len(ctx), max_tokens - total)
        spaced = not spaceless(continuation)
        units = continuation.split() if spaced else list(continuation)
        cont = tuple(tokenize(continuation))
        while len(cont) > limit and units:
            keep = min(len(units) - 1, max(0, len(units) * limit // len(cont)))
            units = units[:keep]
            if spaced:
                continuation = (" " if continuation.startswith(" ") else "") + " ".join(units) if units else ""
            else:
                continuation = "".join(units)
            cont = tuple(tokenize(continuation)) if units else ()
        if not cont or not ctx:
            continue
        out.append(TokenWindow(context=context, continuation=continuation, context_ids=ctx, continuation_ids=cont))
        total += len(cont)
    return out
