"""Held-out prose in twelve languages, read from Debian's translated manuals (not written by us).

Debian packages `debian-reference-{ja,zh-cn,zh-tw,de,fr,es,pt,it,id}`, `maint-guide-{ja,
zh-cn,zh-tw,de,fr,es,it,ru,vi}` and `debian-faq-ko` ship HTML translations of the Debian
Reference, the New Maintainers' Guide and the Debian FAQ. Each language's paragraphs
(`<p>` text, 80+ characters, no `<pre>`/`<code>` inside) are taken file by file in path
order; files alternate between two sections, so the texts that choose a recipe
("selection") and the texts that report it ("report") are different chapters:

    apt-get install debian-reference-ja … maint-guide-vi debian-faq-ko   # once, as root
    .venv/bin/python benchmarks/multilingual_text.py OUT_DIR            # OUT_DIR/{selection,report}/LANG.txt

prints each file used with its sha256, and writes one UTF-8 text per language and
section, paragraphs separated by blank lines: the form `edgekit eval --text` and
`edgekit convert --calibration-text` read.
"""

from __future__ import annotations

import hashlib
import html.parser
import shlex
import sys
from pathlib import Path

LANGUAGES = {
    "ja": ["/usr/share/debian-reference/*.ja.html", "/usr/share/doc/maint-guide-ja/html/*.ja.html"],
    "zh-cn": ["/usr/share/debian-reference/*.zh-cn.html", "/usr/share/doc/maint-guide-zh-cn/html/*.zh-cn.html"],
    "zh-tw": ["/usr/share/debian-reference/*.zh-tw.html", "/usr/share/doc/maint-guide-zh-tw/html/*.zh-tw.html"],
    "ko": ["/usr/share/doc/debian/FAQ/ko/*.ko.html"],
    "de": ["/usr/share/debian-reference/*.de.html", "/usr/share/doc/maint-guide-de/html/*.de.html"],
    "fr": ["/usr/share/debian-reference/*.fr.html", "/usr/share/doc/maint-guide-fr/html/*.fr.html"],
    "es": ["/usr/share/debian-reference/*.es.html", "/usr/share/doc/maint-guide-es/html/*.es.html"],
    "pt": ["/usr/share/debian-reference/*.pt.html"],
    "it": ["/usr/share/debian-reference/*.it.html", "/usr/share/doc/maint-guide-it/html/*.it.html"],
    "id": ["/usr/share/debian-reference/*.id.html"],
    "ru": ["/usr/share/doc/maint-guide-ru/html/*.ru.html"],
    "vi": ["/usr/share/doc/maint-guide-vi/html/*.vi.html"],
}
MIN_CHARS = 80


class _Paragraphs(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._buf: list[str] | None = None
        self._code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "p":
            self._buf, self._code = [], 0
        elif tag in ("pre", "code", "tt", "kbd", "samp") and self._buf is not None:
            self._code += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self._buf is not None:
            text = " ".join("".join(self._buf).split())
            if len(text) >= MIN_CHARS and not self._code:
                self.out.append(text)
            self._buf = None

    def handle_data(self, data: str) -> None:
        if self._buf is not None:
            self._buf.append(data)


def paragraphs(path: Path) -> list[str]:
    parser = _Paragraphs()
    parser.feed(path.read_text(encoding="utf-8", errors="strict"))
    return parser.out


def files(lang: str) -> list[Path]:
    out: list[Path] = []
    for pattern in LANGUAGES[lang]:
        p = Path(pattern)
        out += sorted(p.parent.glob(p.name))
    return out


def sections(lang: str) -> dict[str, list[tuple[Path, list[str]]]]:
    """Files with paragraphs of `lang`, alternating: even positions "selection", odd "report"."""
    useful = [(f, paragraphs(f)) for f in files(lang)]
    useful = [(f, p) for f, p in useful if p]
    return {"selection": useful[0::2], "report": useful[1::2]}


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = Path(sys.argv[1])
    for lang in LANGUAGES:
        for section, items in sections(lang).items():
            if not items:
                raise SystemExit(f"no {lang} text: apt-get install the packages named in this script's docstring")
            seen: set[str] = set()
            paras = [p for _, ps in items for p in ps if not (p in seen or seen.add(p))]
            dest = out / section / f"{lang}.txt"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text("\n\n".join(paras) + "\n", encoding="utf-8")
            chars = sum(len(p) for p in paras)
            print(f"{section} {lang}: {len(paras)} paragraphs, {chars} characters -> {dest}")
            for f, _ in items:
                print(f"    {f} sha256 {hashlib.sha256(f.read_bytes()).hexdigest()}")
    print("reproduce: " + shlex.join([sys.executable, "benchmarks/multilingual_text.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
