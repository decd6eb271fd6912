"""--vocab-from files are read in blocks, never whole: the checks (UTF-8 with the bad byte's offset,
not empty, sha256), the chunks the tokenizer reads and the counts are those of the whole text at
any block size. The truth is computed here on the whole text, as edgekit did before it streamed."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from pathlib import Path

import pytest

from edgekit.artifact import sha256_file
from edgekit.convert import vocab
from edgekit.errors import InputError

# Blank-line runs, "\r\n", "\r" alone, multi-byte letters (a block can cut them) and Unicode spaces.
_PIECES = ["\n", "\n", "\n\n\n", "\r\n", "\r", " ", "the ", "phone", "Grüße", "日本語", "\u3000", "x"]


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(_PIECES) for _ in range(rng.randrange(0, 60)))


def _whole_chunks(text: str) -> list[str]:
    """The chunks of the whole text at once: cut where a line starts, then each line's pieces."""
    return [piece for line in vocab._TEXT_CHUNK.split(text) for piece in vocab._line_pieces(line)]


def _blocks(text: str, rng: random.Random) -> list[str]:
    """`text` cut anywhere, in pieces of 1 to 7 characters (an empty text: no block)."""
    out, at = [], 0
    while at < len(text):
        n = rng.randint(1, 7)
        out.append(text[at : at + n])
        at += n
    return out


def test_the_streamed_chunks_are_the_whole_texts_chunks_wherever_the_blocks_end() -> None:
    rng = random.Random(19)
    for _ in range(3000):
        text = _random_text(rng)
        assert list(vocab._stream_chunks(_blocks(text, rng))) == _whole_chunks(text), repr(text)
    # One character per block, and one block for all; "\r" is no newline: after one, it starts a line.
    text = "a\n\nb\r\n\r\nc\n"
    assert list(vocab._stream_chunks(text)) == _whole_chunks(text) == ["a\n\n", "b\r\n", "\r\n", "c\n"]
    assert list(vocab._stream_chunks([text])) == _whole_chunks(text)
    assert list(vocab._stream_chunks(["no newline at the end"])) == ["no newline at the end"]


def test_the_counts_are_the_whole_texts_at_any_block_size(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_gemma3_dir))
    rng = random.Random(7)
    files = []
    for n in range(4):
        f = tmp_path / f"text{n}.txt"
        f.write_bytes("".join(_random_text(rng) for _ in range(40)).encode())
        files.append(f)
    (tmp_path / "last.txt").write_bytes(b"first line\r\n\r\n\n  indented\nno newline at the end")
    files.append(tmp_path / "last.txt")
    texts = vocab.read_texts(files)

    whole: Counter[int] = Counter()
    for f in files:
        chunks = _whole_chunks(f.read_bytes().decode("utf-8"))  # bytes decoded: "\r\n" stays
        for enc in tok.backend_tokenizer.encode_batch(chunks, add_special_tokens=False):
            whole.update(enc.ids)
    for block_chars in (1, 2, 3, 5, 64, vocab.BLOCK_BYTES):
        assert vocab._count(tok, texts, block_chars=block_chars) == whole, block_chars
    # "\r\n" is counted as it is in the file, not as "\n".
    last = texts[-1:]
    translated = tmp_path / "translated.txt"
    translated.write_bytes(last[0].path.read_bytes().replace(b"\r\n", b"\n"))
    assert vocab._count(tok, last, block_chars=3) != vocab._count(tok, vocab.read_texts([translated]))


def test_a_file_is_checked_and_hashed_in_blocks(tmp_path: Path) -> None:
    f = tmp_path / "app.txt"
    f.write_bytes("Grüße aus Köln\r\n日本語\n".encode())
    for block_bytes in (1, 2, 3, 7, vocab.BLOCK_BYTES):
        (t,) = vocab.read_texts([f], block_bytes=block_bytes)
        assert (t.path, t.sha256, t.size_bytes) == (f, sha256_file(f), f.stat().st_size)


def test_the_bad_bytes_offset_is_the_whole_files_at_any_block_size(tmp_path: Path) -> None:
    rng = random.Random(3)
    good = "Grüße aus Köln 日本語\n".encode()
    bad_bytes = [b"\xff", b"\xe4", b"\xe6\x97", b"\xc3(", b"\xed\xa0\x80", b"\xf0\x9f\x98"]
    f = tmp_path / "bad.txt"
    for n in range(300):
        cut = rng.randrange(0, len(good) + 1)
        while cut < len(good) and (good[cut] & 0xC0) == 0x80:  # at a character's start
            cut += 1
        data = good[:cut] + rng.choice(bad_bytes) + (good[cut:] if n % 3 else b"")
        f.write_bytes(data)
        with pytest.raises(UnicodeDecodeError) as whole:
            data.decode("utf-8")
        expected = f"--vocab-from {f} is not UTF-8 (byte {whole.value.start}): convert it to UTF-8"
        for block_bytes in (1, 2, 3, 5):
            with pytest.raises(InputError) as got:
                vocab.read_texts([f], block_bytes=block_bytes)
            assert str(got.value) == expected, (data, block_bytes)


def test_a_blank_file_is_empty_at_any_block_size(tmp_path: Path) -> None:
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\r\n\t\u3000\n", encoding="utf-8")  # U+3000: three bytes, cut by small blocks
    nearly = tmp_path / "nearly.txt"
    nearly.write_text(" \n\u3000\n" * 5 + "x", encoding="utf-8")
    for block_bytes in (1, 2, 4, vocab.BLOCK_BYTES):
        with pytest.raises(InputError, match=f"--vocab-from {blank} is empty: give the app's own text"):
            vocab.read_texts([blank], block_bytes=block_bytes)
        assert vocab.read_texts([nearly], block_bytes=block_bytes)[0].size_bytes == nearly.stat().st_size
    with pytest.raises(InputError, match="does not exist"):
        vocab.read_texts([tmp_path / "missing.txt"])


def test_a_long_line_is_cut_before_its_last_space_the_same_way_at_any_block_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(vocab, "MAX_CHUNK_CHARS", 8)
    assert _whole_chunks("ab cd efgh ijkl\nx") == ["ab cd", " efgh", " ijkl\n", "x"]
    assert _whole_chunks("日本語日本語日本語\n\n") == ["日本語日本語日本", "語\n\n"]  # no space: at 8
    assert _whole_chunks("\n" * 10 + "y") == ["\n" * 8, "\n\n", "y"]
    rng = random.Random(23)
    pieces = [*_PIECES, "Donaudampfschiff", " ", "語語語語語"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 30)))
        chunks = _whole_chunks(text)
        assert list(vocab._stream_chunks(_blocks(text, rng))) == chunks, repr(text)
        assert "".join(chunks) == text and all(0 < len(c) <= 8 for c in chunks), repr(text)
        for a, b in itertools.pairwise(chunks):
            if a.endswith("\n") and not b.startswith("\n"):
                continue  # a line start
            room = 8 - len(a)  # what `a`'s cut saw of `b`: no space in it after the one it is cut at
            assert (b[0] == " " and " " not in b[1:room]) or (len(a) == 8 and " " not in a[1:]), (a, b)


def test_a_long_line_cut_before_a_space_counts_as_the_whole_line(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    """A corpus on one line (200,000 characters of words, three cuts) counts the ids of the line
    encoded whole: each cut falls where a word starts."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_gemma3_dir))
    rng = random.Random(5)
    words = ["der", "das", "Haus", "Grüße", "und", "ist", "nicht", "Straße", "Telefon,", "Köln.", "2026", "日本語"]
    line = " ".join(rng.choice(words) for _ in range(30000))
    f = tmp_path / "one-line.txt"
    f.write_text(line, encoding="utf-8")
    chunks = _whole_chunks(line)
    assert len(chunks) == -(-len(line) // vocab.MAX_CHUNK_CHARS) and len(chunks) > 1
    whole = Counter(tok.backend_tokenizer.encode(line, add_special_tokens=False).ids)
    assert vocab._count(tok, vocab.read_texts([f]), block_chars=5000) == whole
