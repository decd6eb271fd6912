"""The NLL-gap measurement's pure parts: the built-in text, windows, token budgets, the gap."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from edgekit._typed import to_data
from edgekit.artifact import FidelityReport
from edgekit.convert import nll
from edgekit.convert import windows as win
from edgekit.convert.floors import judge
from edgekit.errors import FidelityError, InputError


def test_builtin_sections_are_disjoint_pinned_and_bilingual() -> None:
    selection = nll.builtin_text("selection")
    report = nll.builtin_text(nll.Section.REPORT)
    assert not set(selection.documents) & set(report.documents)
    assert len(report.documents) == 50 + 2  # the 50 Lee articles (one a line) + 2 Russian paragraphs
    assert len(selection.documents) == 300 + 3
    # Languages alternate from the start, so a small token budget sees both.
    assert any("\u0400" <= ch <= "\u04ff" for ch in report.documents[0])
    assert report.documents[1].isascii() and report.documents[1].startswith("The national executive")
    assert report.source.package == "gensim==4.4.0"
    assert isinstance(report.source.files, dict)
    for name, digest in report.source.files.items():
        path = Path(__import__("gensim").__file__).parent.parent / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    # No edgekit file contains the held-out text (it is read at run time, never copied in).
    repo = Path(__file__).resolve().parent.parent
    probe = report.documents[1][:60]
    for path in [*repo.glob("edgekit/**/*.py"), *repo.glob("docs/*.md"), *repo.glob("tests/*.py")]:
        assert probe not in path.read_text(errors="replace"), path


def test_split_windows_keeps_the_text_and_drops_short_tails() -> None:
    words = [f"w{i}" for i in range(win.CONTEXT_WORDS + win.CONTINUATION_WORDS + 5)]
    windows = win.split_windows([" ".join(words)])
    assert len(windows) == 1  # the 5-word tail is below MIN_CONTINUATION_WORDS
    w = windows[0]
    assert w.context == " ".join(words[: win.CONTEXT_WORDS])
    assert w.continuation == " " + " ".join(words[win.CONTEXT_WORDS : win.CONTEXT_WORDS + win.CONTINUATION_WORDS])
    assert (w.context + w.continuation).split() == words[: win.CONTEXT_WORDS + win.CONTINUATION_WORDS]
    tail = win.split_windows([" ".join(words[: win.CONTEXT_WORDS + win.MIN_CONTINUATION_WORDS])])
    assert len(tail) == 1 and len(tail[0].continuation.split()) == win.MIN_CONTINUATION_WORDS


def _char_tokenize(text: str) -> list[int]:
    return [ord(c) for c in text]


def test_token_budget_is_met_exactly_by_shortening_the_last_continuation() -> None:
    docs = [" ".join(f"word{i}" for i in range(200))] * 3
    windows = win.tokenize_windows(win.split_windows(docs), _char_tokenize, max_tokens=500, max_window_tokens=10_000)
    total = sum(len(w.continuation_ids) for w in windows)
    assert 480 <= total <= 500
    for w in windows:
        # The ids are exactly the tokenization of the text the engine will get.
        assert list(w.context_ids) == _char_tokenize(w.context)
        assert list(w.continuation_ids) == _char_tokenize(w.continuation)
        assert w.continuation.startswith(" ")


def test_window_length_respects_the_engine_limit() -> None:
    docs = [" ".join(f"longerword{i}" for i in range(300))]
    windows = win.tokenize_windows(win.split_windows(docs), _char_tokenize, max_tokens=10_000, max_window_tokens=500)
    assert windows
    assert all(1 + len(w.context_ids) + len(w.continuation_ids) <= 500 for w in windows)


def test_a_context_longer_than_the_room_loses_its_first_words() -> None:
    docs = [" ".join(f"w{i:03d}" for i in range(400)), "字" * 400]
    whole = win.tokenize_windows(win.split_windows(docs), _char_tokenize, max_tokens=10_000, max_window_tokens=500)
    assert max(len(w.context_ids) for w in whole) > 60
    cut = win.tokenize_windows(
        win.split_windows(docs), _char_tokenize, max_tokens=10_000, max_window_tokens=500, max_context_tokens=30
    )
    assert len(cut) == len(whole)
    for w, full in zip(cut, whole, strict=True):
        assert (
            len(w.context_ids) <= 30
            and full.context.endswith(w.context)
            and w.continuation.startswith(full.continuation)
        )
        assert not w.context.startswith(" ")
    assert cut[0].context.split()[-1] == whole[0].context.split()[-1] and cut[0].context.split()[0].startswith("w")
    # 128-entry cache, prefill 32: 94 context tokens leave room for two more prefills (measured).
    assert win.context_room(128, (32,)) == 94 and win.context_room(4096, (32, 128, 1024)) == 3070


def test_gap_is_the_difference_of_token_weighted_means() -> None:
    text = nll.builtin_text()
    engine = [np.array([2.0, 3.0]), np.array([4.0])]
    ref = [np.array([1.5, 2.5]), np.array([4.0])]
    gap = nll.summarize(engine, ref, text=text)
    assert gap.tokens == 3 and gap.windows == 2
    assert gap.artifact_nll == pytest.approx(3.0) and gap.reference_nll == pytest.approx(8.0 / 3)
    assert gap.gap_nats_per_token == pytest.approx(1.0 / 3)
    assert gap.perplexity_ratio == pytest.approx(math.exp(1.0 / 3))
    assert gap.passed is None and gap.max_nll_gap is None  # measured, not judged
    assert gap.text.name == "builtin:report"
    assert to_data(gap)["perplexity_ratio"] == pytest.approx(math.exp(1.0 / 3))
    judged = judge(gap, max_nll_gap=None)
    assert judged.passed and judged.max_nll_gap is None


def test_gap_above_the_ceiling_or_infinite_is_a_fidelity_error() -> None:
    text = nll.builtin_text()
    worse = nll.summarize([np.array([2.5, 2.5])], [np.array([2.0, 2.0])], text=text)
    with pytest.raises(
        FidelityError,
        match=r"^the converted model is \+0\.500 nats/token worse than PyTorch on 2 tokens of builtin:report "
        r"\(perplexity x1\.65\), above the 0\.10 floor",
    ):
        judge(worse, max_nll_gap=0.10)
    with pytest.raises(FidelityError, match="zero probability"):
        nll.summarize([np.array([np.inf])], [np.array([2.0])], text=text)
    ok = judge(nll.summarize([np.array([2.05, 2.05])], [np.array([2.0, 2.0])], text=text), max_nll_gap=0.10)
    assert ok.passed and ok.max_nll_gap == 0.10


def test_a_gap_over_each_sides_own_tokenization_is_judged_too() -> None:
    """A trimmed vocabulary: each side scored its own ids of the same text (main raised UnboundLocalError here)."""
    a = win.TokenWindow(context="c", continuation=" some text", context_ids=(1,), continuation_ids=(5, 6, 7))
    r = dataclasses.replace(a, continuation_ids=(8, 9))
    gap = nll.summarize(
        [np.array([1.0, 1.0, 1.0])], [np.array([1.0, 1.0])], text=nll.builtin_text(), windows=[a], reference_windows=[r]
    )
    assert not gap.same_tokenizer and gap.tokens == 3 and gap.reference_tokens == 2
    assert gap.gap_nats_per_token == pytest.approx(1.0 / 3)
    with pytest.raises(
        FidelityError, match=r"^the converted model is \+0\.333 nats/token worse than PyTorch on 3 tokens"
    ):
        judge(gap, max_nll_gap=0.10)


def test_a_report_is_judged_on_agreement_and_gap_naming_both() -> None:
    gap = nll.summarize([np.array([2.5, 2.5])], [np.array([2.0, 2.0])], text=nll.builtin_text())
    report = FidelityReport(
        top1_agreement=0.5,
        max_abs_logit_error=1.25,
        mean_abs_logit_error=0.5,
        greedy_agreement=1.0,
        greedy_steps=16,
        positions=8,
        engine_generated_tokens=None,
        engine_text=None,
        nll=gap,
    )
    with pytest.raises(
        FidelityError,
        match=r"^INT8: top-1 agreement 50\.0% < 90% and NLL gap \+0\.500 nats/token > 0\.10 vs PyTorch "
        r"\(max logit error 1\.25\): the conversion loses too much",
    ):
        judge(report, min_top1_agreement=0.9, max_nll_gap=0.10, what="INT8")
    passed = judge(report, min_top1_agreement=0.5, max_nll_gap=None, what="INT8")
    assert passed.passed and passed.min_top1_agreement == 0.5
    assert passed.nll is not None and passed.nll.passed and passed.nll.max_nll_gap is None


def test_user_text_file_errors_and_paragraphs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        nll.text_from_file(tmp_path / "missing.txt")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(InputError, match="not UTF-8"):
        nll.text_from_file(latin)
    short = tmp_path / "short.txt"
    short.write_text("too few words here")
    with pytest.raises(InputError, match="too short"):
        nll.text_from_file(short)
    good = tmp_path / "good.txt"
    good.write_text("first paragraph " * 20 + "\n\n" + "second\nparagraph " * 20 + "\n")
    text = nll.text_from_file(good)
    assert len(text.documents) == 2 and "\n" not in text.documents[1]
    assert to_data(text.source) == {
        "name": "file:good.txt",
        "kind": "file",
        "path": str(good.resolve()),
        "sha256": hashlib.sha256(good.read_bytes()).hexdigest(),
    }


class _FakeSession:
    """A LiteRT-LM session whose score of a token is a fixed function of everything before it.

    `drops`: like litert-lm-api 0.18.1, scoring skips the prompt's second-to-last token.
    """

    def __init__(self, engine: _FakeEngine) -> None:
        self._engine = engine
        self._prompt: list[int] = [0]  # BOS
        self._count = 0

    def run_prefill(self, texts: list[str]) -> None:
        ids = [t for text in texts for t in self._engine.tokenize(text)]
        self._prompt += ids
        self._count = len(ids) + (1 if len(self._prompt) == len(ids) + 1 else 0)

    def get_benchmark_info(self) -> object:
        return type("Info", (), {"last_prefill_token_count": self._count})()

    def run_text_scoring(self, texts: list[str], store_token_lengths: bool) -> object:
        seen = self._prompt[:-2] + self._prompt[-1:] if self._engine.drops else list(self._prompt)
        scores = []
        for t in self._engine.tokenize(texts[0]):
            scores.append(-_true_nll(seen, t))
            seen.append(t)
        return type("Responses", (), {"token_scores": [scores]})()

    def close(self) -> None:
        pass


def _true_nll(before: list[int], token: int) -> float:
    return (hash((tuple(before[-6:]), token)) % 1000) / 250.0


class _FakeEngine:
    def __init__(self, drops: bool) -> None:
        self.drops = drops

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def detokenize(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids)

    def create_session(self, **_: object) -> _FakeSession:
        return _FakeSession(self)


@pytest.mark.parametrize("drops", [True, False])
def test_scoring_is_detected_and_corrected_to_exact(drops: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    monkeypatch.setitem(sys.modules, "litert_lm", types.SimpleNamespace(SamplerConfig=lambda **_: None))
    engine = _FakeEngine(drops)
    docs = [" ".join(f"word{i}" for i in range(300))]
    windows = win.tokenize_windows(
        win.split_windows(docs), engine.tokenize, max_tokens=400, max_window_tokens=10_000, round_trips=lambda i: True
    )
    scoring = nll.detect_scoring(engine, windows)
    assert scoring is (nll.EngineScoring.DROPS_SECOND_TO_LAST if drops else nll.EngineScoring.EXACT)
    for w, got in zip(windows, nll.engine_nll(engine, windows, scoring), strict=True):
        seq = [0, *w.context_ids, *w.continuation_ids]
        n = len(w.continuation_ids)
        want = [_true_nll(seq[: len(seq) - n + i], seq[len(seq) - n + i]) for i in range(n)]
        assert np.allclose(got, want)
    # Uncorrected, the dropping engine scores another text.
    if drops:
        wrong = nll.engine_nll(engine, windows, nll.EngineScoring.EXACT)
        assert not np.allclose(np.concatenate(wrong), np.concatenate(nll.engine_nll(engine, windows, scoring)))


def test_a_context_ending_in_one_token_twice_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    monkeypatch.setitem(sys.modules, "litert_lm", types.SimpleNamespace(SamplerConfig=lambda **_: None))
    engine = _FakeEngine(drops=True)
    # The first window's context ends in "ll": with either "l" skipped the prompt is the same.
    first = " ".join(f"w{i}" for i in range(win.CONTEXT_WORDS - 1)) + " ball " + " ".join(f"v{i}" for i in range(40))
    docs = [first, " ".join(f"word{i}" for i in range(300))]
    windows = win.tokenize_windows(
        win.split_windows(docs), engine.tokenize, max_tokens=400, max_window_tokens=10_000, round_trips=lambda i: True
    )
    assert windows[0].context.endswith("ball")
    assert nll.detect_scoring(engine, windows) is nll.EngineScoring.DROPS_SECOND_TO_LAST
    with pytest.raises(FidelityError, match="no window of the evaluation text can probe"):
        nll.detect_scoring(engine, windows[:1])


def test_text_without_spaces_is_cut_by_characters_and_contexts_end_on_a_round_trip() -> None:
    doc = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。" * 20
    assert win.spaceless(doc) and not win.spaceless("The national executive of the party")
    windows = win.split_windows([doc])
    assert windows and all(len(w.context) == win.CONTEXT_CHARS for w in windows)
    joined = "".join(w.context + w.continuation for w in windows)
    assert doc.startswith(joined) and len(joined) > len(doc) - win.CONTEXT_CHARS - win.CONTINUATION_CHARS
    # A context whose last token does not round-trip gives characters to the continuation.
    bad = ord("。")
    tw = win.tokenize_windows(
        windows, _char_tokenize, max_tokens=10_000, max_window_tokens=10_000, round_trips=lambda i: i != bad
    )
    assert tw and all(w.context_ids[-1] != bad for w in tw)
    for w, orig in zip(tw, windows, strict=False):
        assert w.context + w.continuation == orig.context + orig.continuation
