"""A German --vocab-from corpus from what a Debian machine ships (none of it written by us).

The "selection" half of benchmarks/multilingual_text.py's German text (Debian Reference and
New Maintainers' Guide chapters; the "report" half stays held out), Vim's German tutor, the
German translations (msgstr, 20+ characters) of every message catalog in
/usr/share/locale/de/LC_MESSAGES, and the German man pages' text (roff requests dropped).

With --wide, also general German from Debian's packages (apt-get install wngerman
debian-handbook fortunes-de manpages-de): the word list /usr/share/dict/ngerman (16 words a
line, space-separated, as words stand in running text), the text of the Debian
Administrator's Handbook in German (HTML tags dropped) and the German fortunes, except
zitate.u8: --held-out FILE writes every 20th quote of that file (up to 40,000 bytes), a
general prose the corpus never saw.

    .venv/bin/python benchmarks/multilingual_text.py /tmp/ml
    .venv/bin/python benchmarks/german_corpus.py /tmp/ml/selection/de.txt OUT.txt
    .venv/bin/python benchmarks/german_corpus.py /tmp/ml/selection/de.txt OUT.txt --wide --held-out HELD.txt
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
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes/de")
HANDBOOK = Path("/usr/share/doc/debian-handbook/html/de-DE")


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


def _wide() -> list[str]:
    for need in (Path("/usr/share/dict/ngerman"), HANDBOOK, FORTUNES):
        if not need.exists():
            raise SystemExit(f"{need} is missing: apt-get install wngerman debian-handbook fortunes-de manpages-de")
    words = Path("/usr/share/dict/ngerman").read_text(encoding="utf-8").split()
    parts = ["\n".join(" ".join(words[i : i + 16]) for i in range(0, len(words), 16))]
    for page in sorted(HANDBOOK.glob("*.html")):
        text = _Text()
        text.feed(page.read_text(encoding="utf-8", errors="replace"))
        parts.append("\n".join(text.parts))
    for f in sorted(FORTUNES.glob("*.u8")):
        if f.name != "zitate.u8":
            parts.append("\n\n".join(_fortunes(f)))
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("selection", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--wide", action="store_true", help="add general German from Debian's packages")
    parser.add_argument("--held-out", type=Path, help="write every 20th quote of zitate.u8 here")
    args = parser.parse_args()
    selection, out = args.selection, args.out
    parts = [selection.read_text(encoding="utf-8")]
    tutor = Path("/usr/share/vim/vim90/tutor/tutor.de")
    if tutor.is_file():
        parts.append(tutor.read_bytes().decode("utf-8", "replace"))
    messages = []
    for f in sorted(glob.glob("/usr/share/locale/de/LC_MESSAGES/*.mo")):
        with open(f, "rb") as fh:
            try:
                catalog = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
            except (OSError, UnicodeDecodeError):  # a catalog not in UTF-8: left out
                continue
        messages += [v for k, v in catalog.items() if k and isinstance(v, str) and len(v) > 20]
    parts.append("\n".join(messages))
    pages = []
    for f in sorted(glob.glob("/usr/share/man/de/*/*.gz")):
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
        parts += _wide()
    if args.held_out:
        held, size = [], 0
        for quote in _fortunes(FORTUNES / "zitate.u8")[::20]:
            if size + len(quote.encode()) > 40_000:
                break
            held.append(quote)
            size += len(quote.encode()) + 2
        args.held_out.write_text("\n\n".join(held) + "\n", encoding="utf-8")
        digest = hashlib.sha256(args.held_out.read_bytes()).hexdigest()
        print(f"{args.held_out}: {args.held_out.stat().st_size} bytes, {len(held)} quotes, sha256 {digest}")
    corpus = "\n\n".join(p.strip() for p in parts)
    out.write_text(corpus, encoding="utf-8")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"{out}: {len(corpus.encode())} bytes, {len(messages)} messages, {len(pages)} man pages, sha256 {digest}")
    print("reproduce: " + shlex.join([sys.executable, "benchmarks/german_corpus.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
