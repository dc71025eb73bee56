"""How many corpus replies tresen's parser and two published reply parsers get exactly right.

Prints one JSON line. The other parsers are not dependencies of tresen; install them first:
    .venv/bin/pip install mail-parser-reply quotequail
    .venv/bin/python scripts/compare_reply_parsers.py
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path

from mailparser_reply import EmailReplyParser  # type: ignore[import-not-found]
from quotequail import quote  # type: ignore[import-not-found]

from tresen.channels.mailparts import html_to_text
from tresen.channels.mailtext import is_forward_subject, split_mail

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "email" / "corpus"
LANGUAGES = ["de", "en", "fr", "nl", "pl", "da", "sv"]


def _quotequail(text: str, _subject: str) -> str:
    return "".join(part for shown, part in quote(text) if shown).strip()


def _mail_parser_reply(text: str, _subject: str) -> str:
    return (EmailReplyParser(languages=LANGUAGES).parse_reply(text) or "").strip()


def _tresen(text: str, subject: str) -> str:
    return split_mail(text, forwarded_subject=is_forward_subject(subject)).reply


def main() -> None:
    """Score each parser on every corpus case (exact reply text)."""
    cases = tomllib.loads((CORPUS / "cases.toml").read_text("utf-8"))["case"]
    parsers: dict[str, Callable[[str, str], str]] = {
        "tresen": _tresen,
        "mail-parser-reply": _mail_parser_reply,
        "quotequail": _quotequail,
    }
    exact = dict.fromkeys(parsers, 0)
    quote_left = dict.fromkeys(parsers, 0)
    reply_lost = dict.fromkeys(parsers, 0)
    for case in cases:
        raw = (CORPUS / case["file"]).read_text("utf-8")
        text = html_to_text(raw) if case["file"].endswith(".html") else raw
        wanted = {line.strip() for line in case["reply"].splitlines() if line.strip()}
        for name, parse in parsers.items():
            got = parse(text, case.get("subject", ""))
            lines = {line.strip() for line in got.splitlines() if line.strip()}
            exact[name] += got == case["reply"]
            quote_left[name] += bool(lines - wanted)
            reply_lost[name] += bool(wanted - lines)
    print(
        json.dumps(
            {
                "cases": len(cases),
                "exact_reply": exact,
                "quoted_lines_left_in_reply": quote_left,
                "reply_lines_lost": reply_lost,
            }
        )
    )


if __name__ == "__main__":
    main()
