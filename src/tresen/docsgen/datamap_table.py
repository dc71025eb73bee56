"""The privacy data map for the docs: every table and store, with basis, retention, export, erasure."""

from __future__ import annotations

from tresen.privacy import datamap
from tresen.privacy.export import EXPORTED_AS
from tresen.privacy.records import legal_basis, retention_of
from tresen.privacy.retention import DEFAULTS
from tresen.settings import Settings

_WHOSE = {"contact": "customer", "agent": "staff", "none": "–"}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _columns(columns: tuple[str, ...]) -> str:
    return ", ".join(f"`{c}`" for c in columns) or "–"


def markdown(settings: Settings | None = None) -> str:
    """Two tables: the tables with personal data, then the rest and the stores outside tables."""
    settings = settings or Settings()
    head = [
        "table",
        "whose data",
        "personal data",
        "legal basis",
        "kept (default)",
        "in the export",
        "erasure",
        "why / how a contact's rows are found",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    others: list[str] = []
    for entry in datamap.TABLES:
        if not entry.holds_personal_data and entry.subject == "none":
            others.append(f"`{entry.table}` ({_cell(entry.why)})")
            continue
        found = f"; found by `{entry.contact_path}`" if entry.contact_path else ""
        row = [
            f"`{entry.table}`",
            _WHOSE.get(entry.subject, entry.subject),
            _columns(entry.personal_columns),
            legal_basis(entry),
            retention_of(entry, DEFAULTS, settings),
            EXPORTED_AS.get(entry.table, "no"),
            entry.erasure.value,
            _cell(entry.why + found),
        ]
        lines.append("| " + " | ".join(row) + " |")
    stores = ["| place | holds | how a contact's part is found | erasure | databases | why |"]
    stores.append("|---|---|---|---|---|---|")
    for store in datamap.STORES:
        stores.append(
            "| "
            + " | ".join(
                [
                    f"`{store.location}`",
                    _cell(store.holds),
                    _cell(store.contact_path),
                    store.erasure.value,
                    ", ".join(store.dialects),
                    _cell(store.why),
                ]
            )
            + " |"
        )
    return "\n".join(
        [
            *lines,
            "",
            "Outside the tables:",
            "",
            *stores,
            "",
            "Tables without personal data: " + "; ".join(others) + ".",
        ]
    )
