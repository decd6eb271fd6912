"""Is an answer right? Pure checks of what a model printed.

classify_answer(text)          one turn's answer -> Degenerate or None (empty, special tokens, one repeated unit)
mostly_degenerate(n, total)    whether a run's degenerate turns fail it (more than half)
first_difference(a, b)         the first differing token of two token sequences (smoke run vs host engine)

Why: a runtime's backend can run fast and answer garbage, its tokens/s looking fine (each
runtime names its known case: `Runtime.garbage_case`, e.g. Gemma 3 270M on a GPU backend
emitting only `<pad>`). A speed figure for garbage is not a figure.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Sequence

# Special tokens as detokenizers print them: Gemma's <pad> <eos> <bos> <unk> <mask>
# <start_of_turn> <end_of_turn> <unusedN> [multimodal]; SentencePiece's <s> </s>; <|endoftext|>-style ones.
SPECIAL_TOKEN = re.compile(r"<\|?/?[A-Za-z][A-Za-z0-9_]*\|?>|\[multimodal\]")
SPECIAL_RUN = 4
"""Consecutive special tokens that make an answer degenerate even with other text around them."""
REPEAT_MIN = 8
"""A unit repeated at least this many times ..."""
REPEAT_COVER = 0.8
"""... over at least this share of the answer's characters is one token filling the turn."""
_MAX_UNIT = 16


class Degenerate(str, enum.Enum):
    """Why an answer is not an answer."""

    EMPTY = "empty"
    SPECIAL_TOKENS = "special_tokens"
    REPEATED = "repeated"


def _special_runs(text: str) -> tuple[int, int]:
    """(special tokens in all, the longest run of them with only whitespace between)."""
    total = longest = run = 0
    end = -1
    for m in SPECIAL_TOKEN.finditer(text):
        total += 1
        run = run + 1 if end >= 0 and not text[end : m.start()].strip() else 1
        longest = max(longest, run)
        end = m.end()
    return total, longest


def _repeat_cover(text: str) -> float:
    """The share of `text` covered by its longest stretch of one unit (1-16 characters) repeated REPEAT_MIN+ times."""
    best = 0
    pattern = re.compile(rf"(.{{1,{_MAX_UNIT}}}?)(?:\1){{{REPEAT_MIN - 1},}}", re.S)
    pos = 0
    while pos < len(text):
        m = pattern.search(text, pos)
        if m is None:
            break
        best = max(best, m.end() - m.start())
        pos = m.end()
    return best / len(text) if text else 0.0


def classify_answer(text: str) -> Degenerate | None:
    """Degenerate when the answer is empty (or whitespace), made of special tokens (nothing
    else, or a run of SPECIAL_RUN of them), or one unit repeated to fill most of it
    ("//////…", "the the the …"); None for anything else, however poor."""
    stripped = text.strip()
    if not stripped:
        return Degenerate.EMPTY
    total, longest = _special_runs(stripped)
    if total and (longest >= SPECIAL_RUN or not SPECIAL_TOKEN.sub("", stripped).strip()):
        return Degenerate.SPECIAL_TOKENS
    if _repeat_cover(stripped) >= REPEAT_COVER:
        return Degenerate.REPEATED
    return None


def mostly_degenerate(degenerate: int, total: int) -> bool:
    """A run fails when more than half of its answered turns are degenerate."""
    return total > 0 and degenerate * 2 > total


def describe(kinds: Sequence[Degenerate]) -> str:
    """`special tokens such as <pad>: 5, empty: 1` for a run's degenerate turns."""
    words = {
        Degenerate.SPECIAL_TOKENS: "special tokens such as <pad>",
        Degenerate.EMPTY: "empty",
        Degenerate.REPEATED: "one token repeated",
    }
    counts = {k: sum(1 for x in kinds if x is k) for k in Degenerate}
    return ", ".join(f"{words[k]}: {n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Difference:
    """The first position (from 0) where two token sequences differ; a token is None past an end."""

    position: int
    a: int | None
    b: int | None


def first_difference(a: Sequence[int], b: Sequence[int]) -> Difference | None:
    """None when `a` and `b` are the same sequence."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return Difference(position=i, a=x, b=y)
    if len(a) == len(b):
        return None
    n = min(len(a), len(b))
    return Difference(position=n, a=a[n] if n < len(a) else None, b=b[n] if n < len(b) else None)
