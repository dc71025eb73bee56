#!/usr/bin/env python3
"""Derive the bot's German synonym table from OpenThesaurus (Debian: openthesaurus-de-text).

Keeps single-word terms only (no phrases, no hyphenated words, remarks like "(ugs.)" removed),
groups of 2 to 12 words; writes one group per line, words separated by ";", gzip-compressed,
with OpenThesaurus's licence header (LGPL-2.1-or-later). Usage:

    python scripts/build_synonyms.py [/usr/share/openthesaurus-de/openthesaurus.txt]
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

SOURCE = Path("/usr/share/openthesaurus-de/openthesaurus.txt")
TARGET = Path(__file__).resolve().parent.parent / "src/tresen/bot/data/synonyms_de.txt.gz"
MAX_GROUP = 12
_REMARK = re.compile(r"\s*\([^)]*\)")


def main(source: Path) -> None:
    header: list[str] = []
    groups: list[str] = []
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            if not groups:
                header.append(line)
            continue
        words: list[str] = []
        for term in line.split(";"):
            term = _REMARK.sub("", term).strip()
            if len(term) >= 3 and term.isalpha():
                words.append(term)
        words = list(dict.fromkeys(words))
        if 2 <= len(words) <= MAX_GROUP:
            groups.append(";".join(words))
    note = [
        "#",
        f"# Derived for tresen by scripts/build_synonyms.py from {source.name}: single words only,",
        f"# remarks removed, groups of 2 to {MAX_GROUP} words. Same licence as the source above.",
    ]
    text = "\n".join([*header, *note, *groups]) + "\n"
    TARGET.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    print(f"{len(groups)} groups written to {TARGET}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE)
