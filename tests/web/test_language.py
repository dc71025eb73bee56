"""The catalogs are complete: every message the pages use has a German translation with the
same placeholders (the check `pybabel extract` + `pybabel update --check` would make)."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from tresen.integrations import tokens
from tresen.web import audit_admin, channel_checks, channels_admin, layout, notify_admin
from tresen.web.i18n import LOCALE_DIR

WEB = Path(channels_admin.__file__).parent
PLACEHOLDER = re.compile(r"\{[a-z_0-9]*\}|%\(\w+\)d")


def _used() -> dict[str, str]:
    """Every message id the templates and the web modules pass to gettext, with where."""
    found: dict[str, str] = {}
    for filename, line, message, _, _ in extract_from_dir(
        str(WEB),
        method_map=[("templates/**.html", "jinja2.ext:babel_extract"), ("*.py", "python")],
        options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords={"_": None, "gettext": None, "ngettext": (1, 2)},
    ):
        for msgid in message if isinstance(message, tuple) else (message,):
            if msgid:
                found.setdefault(msgid, f"{filename}:{line}")
    for label in (*channels_admin.FIELD_LABELS.values(), *channels_admin.GUIDES.values()):
        found.setdefault(label, "channels_admin.py")
    for hint in (
        *channel_checks.ADDRESS_HINTS.values(),
        *notify_admin.EVENT_LABELS.values(),
        *audit_admin.ACTIONS.values(),
    ):
        found.setdefault(hint, "channel_checks.py / notify_admin.py")
    for meaning in tokens.SCOPE_MEANINGS.values():
        found.setdefault(meaning, "integrations/tokens.py")
    for _, label, _ in layout.PAGES:
        found.setdefault(label, "layout.py")
    return found


def _german() -> dict[str, str]:
    with (LOCALE_DIR / "de" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="de")
    return {str(m.id): str(m.string) for m in catalog if m.id and not m.fuzzy}


def test_every_message_of_the_pages_has_a_german_translation() -> None:
    german = _german()
    missing = [f"{where}: {msgid!r}" for msgid, where in _used().items() if not german.get(msgid)]
    assert not missing, "untranslated:\n" + "\n".join(sorted(missing))


def test_translations_keep_their_placeholders() -> None:
    german = _german()
    broken = [
        msgid
        for msgid in _used()
        if msgid in german
        and sorted(PLACEHOLDER.findall(msgid)) != sorted(PLACEHOLDER.findall(german[msgid]))
    ]
    assert not broken, broken


def test_the_extraction_finds_what_the_pages_say() -> None:
    used = _used()
    assert "Sign out" in used and "Connect your first channel" in used
    assert len(used) > 400
