"""A German --vocab-from corpus from what a Debian machine ships (none of it written by us).

The "selection" half of benchmarks/multilingual_text.py's German text (Debian Reference and
New Maintainers' Guide chapters; the "report" half stays held out), Vim's German tutor, the
German translations (msgstr, 20+ characters) of every message catalog in
/usr/share/locale/de/LC_MESSAGES, and the German man pages' text (roff requests dropped).

    .venv/bin/python benchmarks/multilingual_text.py /tmp/ml
    .venv/bin/python benchmarks/german_corpus.py /tmp/ml/selection/de.txt OUT.txt
"""

from __future__ import annotations

import gettext
import glob
import gzip
import hashlib
import re
import shlex
import sys
from pathlib import Path


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    selection, out = Path(sys.argv[1]), Path(sys.argv[2])
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
    corpus = "\n\n".join(p.strip() for p in parts)
    out.write_text(corpus, encoding="utf-8")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"{out}: {len(corpus.encode())} bytes, {len(messages)} messages, {len(pages)} man pages, sha256 {digest}")
    print("reproduce: " + shlex.join([sys.executable, "benchmarks/german_corpus.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
