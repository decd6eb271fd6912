"""A --vocab-from corpus in German or Japanese from what a Debian machine ships (none of it written by us).

The "selection" half of benchmarks/multilingual_text.py's text in the language (Debian
Reference and New Maintainers' Guide chapters; the "report" half stays held out), Vim's
tutor in the language, the translations (msgstr, 20+ characters) of every message catalog
in /usr/share/locale/LANG/LC_MESSAGES, and the man pages' text in the language (roff
requests dropped).

With --wide, also general text from Debian's packages (as root, once):

    de: apt-get install wngerman debian-handbook fortunes-de manpages-de
    ja: apt-get install edict debian-handbook manpages-ja debian-faq-ja

- de: the word list /usr/share/dict/ngerman (16 words a line, space-separated, as words
  stand in running text), the German Debian Administrator's Handbook (HTML tags dropped)
  and the German fortunes except zitate.u8. --held-out FILE writes every 20th quote of
  zitate.u8 (up to 40,000 bytes), a general prose the corpus never saw.
- ja: EDICT's Japanese headwords and readings (16 a line, separated by 、, as Japanese
  is written without spaces) and the Japanese Debian Administrator's Handbook. --held-out
  FILE writes the Debian FAQ in Japanese (its paragraphs, up to 40,000 bytes), which no
  part of the corpus contains; --held-out-edu FILE (apt-get install debian-edu-doc-ja) the
  Debian Edu (bookworm) manual's paragraphs written mostly in Japanese (more than half of
  their letters not ASCII) until one passes 60,000 bytes: a third text, never chosen on.
- both: --held-out-history FILE (apt-get install debian-history) writes the language's
  "Short History of the Debian Project" (its introduction and detailed history: releases,
  conferences, events and obituaries, with names, places and dates; up to 40,000 bytes),
  narrative prose close to news prose, which no part of either corpus contains (in
  Japanese, its paragraphs written mostly in Japanese: some are still in English).
- de, texts to choose on (never to report on): --tune-quotes FILE writes every 20th quote of
  zitate.u8 from the 11th (disjoint from --held-out's), --faq FILE the German Debian FAQ's
  paragraphs (apt-get install debian-faq-de; up to 40,000 bytes each).

    .venv/bin/python benchmarks/multilingual_text.py /tmp/ml
    .venv/bin/python benchmarks/lang_corpus.py /tmp/ml/selection/de.txt OUT.txt
    .venv/bin/python benchmarks/lang_corpus.py /tmp/ml/selection/de.txt OUT.txt --wide --held-out HELD.txt
    .venv/bin/python benchmarks/lang_corpus.py /tmp/ml/selection/ja.txt OUT.txt --lang ja --wide --held-out HELD.txt \\
        [--held-out-edu HELD2.txt]
    .venv/bin/python benchmarks/lang_corpus.py /tmp/ml/selection/de.txt OUT.txt --wide --held-out-history HIST.txt
    .venv/bin/python benchmarks/lang_corpus.py /tmp/ml/selection/de.txt OUT.txt --tune-quotes TUNE.txt --faq FAQ.txt
"""

from __future__ import annotations

import argparse
import gettext
import glob
import gzip
import hashlib
import html.parser
import re
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes/de")
HANDBOOK = {
    "de": Path("/usr/share/doc/debian-handbook/html/de-DE"),
    "ja": Path("/usr/share/doc/debian-handbook/html/ja-JP"),
}
TUTOR = {"de": "tutor.de", "ja": "tutor.ja.utf-8"}
EDICT = Path("/usr/share/edict/edict")
FAQ_JA = Path("/usr/share/doc/debian/FAQ/ja")
FAQ_DE = Path("/usr/share/doc/debian/FAQ/de")
EDU_JA = Path("/usr/share/doc/debian-edu-doc-ja/debian-edu-bookworm-manual.html")
EDU_BYTES = 60_000
HISTORY = Path("/usr/share/doc/debian-history/docs")
HELD_OUT_BYTES = 40_000


class _Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(" ".join(data.split()))


def _fortunes(path: Path) -> list[str]:
    return [q.strip() for q in path.read_text(encoding="utf-8", errors="replace").split("\n%\n") if q.strip()]


def _handbook(lang: str) -> list[str]:
    pages = []
    for page in sorted(HANDBOOK[lang].glob("*.html")):
        text = _Text()
        text.feed(page.read_text(encoding="utf-8", errors="replace"))
        pages.append("\n".join(text.parts))
    return pages


def _edict_words() -> list[str]:
    """EDICT's headwords and their readings ("見る [みる] /(v1) to see/..."), its title line left out."""
    words: list[str] = []
    for line in EDICT.read_bytes().decode("euc-jp", errors="replace").splitlines()[1:]:
        head = line.split(" /", 1)[0]
        words += [w for w in re.split(r"[\s\[\]]+", head) if w and "\ufffd" not in w]
    return words


def _wide(lang: str) -> list[str]:
    needs = {
        "de": (Path("/usr/share/dict/ngerman"), HANDBOOK["de"], FORTUNES),
        "ja": (EDICT, HANDBOOK["ja"]),
    }[lang]
    packages = {
        "de": "wngerman debian-handbook fortunes-de manpages-de",
        "ja": "edict debian-handbook manpages-ja debian-faq-ja",
    }[lang]
    for need in needs:
        if not need.exists():
            raise SystemExit(f"{need} is missing: apt-get install {packages}")
    if lang == "de":
        words, sep = Path("/usr/share/dict/ngerman").read_text(encoding="utf-8").split(), " "
    else:
        words, sep = _edict_words(), "、"
    parts = ["\n".join(sep.join(words[i : i + 16]) for i in range(0, len(words), 16)), *_handbook(lang)]
    if lang == "de":
        for f in sorted(FORTUNES.glob("*.u8")):
            if f.name != "zitate.u8":
                parts.append("\n\n".join(_fortunes(f)))
    return parts


def _held_out(lang: str) -> list[str]:
    return _first_bytes(_fortunes(FORTUNES / "zitate.u8")[::20]) if lang == "de" else _faq("ja")


def _faq(lang: str) -> list[str]:
    """The Debian FAQ's paragraphs in `lang`, the first HELD_OUT_BYTES."""
    sys.path.insert(0, str(Path(__file__).parent))
    from multilingual_text import paragraphs

    folder = FAQ_JA if lang == "ja" else FAQ_DE
    if not folder.is_dir():
        raise SystemExit(f"{folder} is missing: apt-get install debian-faq-{lang}")
    return _first_bytes(p for f in sorted(folder.glob(f"*.{lang}.html")) for p in paragraphs(f))


def _first_bytes(pieces: Iterable[str]) -> list[str]:
    """The first pieces that fit in HELD_OUT_BYTES, joined by blank lines."""
    held, size = [], 0
    for piece in pieces:
        if size + len(piece.encode()) > HELD_OUT_BYTES:
            break
        held.append(piece)
        size += len(piece.encode()) + 2
    return held


def _mostly_japanese(piece: str) -> bool:
    """More than half of the paragraph's letters are not ASCII."""
    letters = [c for c in piece if c.isalpha()]
    return sum(not c.isascii() for c in letters) > len(letters) / 2


def _held_out_edu() -> list[str]:
    sys.path.insert(0, str(Path(__file__).parent))
    from multilingual_text import paragraphs

    if not EDU_JA.is_file():
        raise SystemExit(f"{EDU_JA} is missing: apt-get install debian-edu-doc-ja")
    held, size = [], 0
    for piece in paragraphs(EDU_JA):
        if not _mostly_japanese(piece):
            continue
        held.append(piece)
        size += len(piece.encode())
        if size > EDU_BYTES:
            break
    return held


def _held_out_history(lang: str) -> list[str]:
    sys.path.insert(0, str(Path(__file__).parent))
    from multilingual_text import paragraphs

    files = [HISTORY / f"{name}.{lang}.html" for name in ("intro", "detailed")]
    for f in files:
        if not f.is_file():
            raise SystemExit(f"{f} is missing: apt-get install debian-history")
    pieces = (p for f in files for p in paragraphs(f))
    # In Japanese, the paragraphs left in English are not the language's text.
    return _first_bytes(p for p in pieces if lang != "ja" or _mostly_japanese(p))


def _write_held(path: Path, held: list[str]) -> None:
    path.write_text("\n\n".join(held) + "\n", encoding="utf-8")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path}: {path.stat().st_size} bytes, {len(held)} paragraphs, sha256 {digest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("selection", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--lang", choices=("de", "ja"), default="de")
    parser.add_argument("--wide", action="store_true", help="add general text from Debian's packages")
    parser.add_argument("--held-out", type=Path, help="write the language's held-out text here (see above)")
    parser.add_argument("--held-out-edu", type=Path, help="ja: write the Debian Edu manual's held-out text here")
    parser.add_argument("--held-out-history", type=Path, help="write the Debian history's held-out text here")
    parser.add_argument(
        "--tune-quotes", type=Path, help="de: write the tuning quotes here (every 20th of zitate.u8 from the 11th)"
    )
    parser.add_argument("--faq", type=Path, help="de: write the German Debian FAQ's paragraphs here (a tuning text)")
    args = parser.parse_args()
    selection, out, lang = args.selection, args.out, args.lang
    if args.held_out_edu and lang != "ja":
        raise SystemExit("--held-out-edu is Japanese's third text: add --lang ja")
    if (args.tune_quotes or args.faq) and lang != "de":
        raise SystemExit("--tune-quotes and --faq are German tuning texts: leave out --lang ja")
    parts = [selection.read_text(encoding="utf-8")]
    tutor = Path("/usr/share/vim/vim90/tutor") / TUTOR[lang]
    if tutor.is_file():
        parts.append(tutor.read_bytes().decode("utf-8", "replace"))
    messages = []
    for f in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")):
        with open(f, "rb") as fh:
            try:
                catalog = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
            except (OSError, UnicodeDecodeError):  # a catalog not in UTF-8: left out
                continue
        messages += [v for k, v in catalog.items() if k and isinstance(v, str) and len(v) > 20]
    parts.append("\n".join(messages))
    pages = []
    for f in sorted(glob.glob(f"/usr/share/man/{lang}/*/*.gz")):
        try:
            with gzip.open(f) as gz:
                text = gz.read().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        lines = [
            re.sub(r"\\f[BIRP]|\\-|\\\(.{2}|\\&", "", line)
            for line in text.splitlines()
            if line and not line.startswith((".", "'\\\"", '\\"'))
        ]
        pages.append("\n".join(lines))
    parts.append("\n\n".join(pages))
    if args.wide:
        parts += _wide(lang)
    if args.held_out:
        _write_held(args.held_out, _held_out(lang))
    if args.held_out_edu:
        _write_held(args.held_out_edu, _held_out_edu())
    if args.held_out_history:
        _write_held(args.held_out_history, _held_out_history(lang))
    if args.tune_quotes:
        _write_held(args.tune_quotes, _first_bytes(_fortunes(FORTUNES / "zitate.u8")[10::20]))
    if args.faq:
        _write_held(args.faq, _faq("de"))
    corpus = "\n\n".join(p.strip() for p in parts)
    out.write_text(corpus, encoding="utf-8")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"{out}: {len(corpus.encode())} bytes, {len(messages)} messages, {len(pages)} man pages, sha256 {digest}")
    print("reproduce: " + shlex.join([sys.executable, "benchmarks/lang_corpus.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
