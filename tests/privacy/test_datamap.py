"""The data map names every table; a table that can hold personal data cannot slip past it."""

from __future__ import annotations

from sqlalchemy import JSON, Column, MetaData, String, Table, Text, TypeDecorator

from tresen.db.tables import Base
from tresen.db.types import EncryptedJson, EncryptedText
from tresen.privacy.datamap import BY_TABLE, TABLES, Erasure


def _free_text_columns(table) -> list[str]:  # type: ignore[no-untyped-def]
    """Columns that could hold a name, an address or a text: strings and JSON, ids excepted."""
    out = []
    for column in table.columns:
        kind = column.type.impl_instance if isinstance(column.type, TypeDecorator) else column.type
        if not isinstance(kind, String | Text | JSON):
            continue
        generated_id = column.primary_key and getattr(column.type, "length", None) == 26
        if column.foreign_keys or column.name.endswith("_id") or generated_id:
            continue
        out.append(column.name)
    return out


def test_every_table_is_in_the_data_map() -> None:
    missing = [t.name for t in Base.metadata.sorted_tables if t.name not in BY_TABLE]
    assert not missing, f"add these tables to tresen/privacy/datamap.py: {missing}"
    stale = sorted(set(BY_TABLE) - {t.name for t in Base.metadata.sorted_tables})
    assert not stale, f"the data map names tables that do not exist: {stale}"
    assert len(BY_TABLE) == len(TABLES)


def test_every_text_column_is_classified() -> None:
    for table in Base.metadata.sorted_tables:
        entry = BY_TABLE[table.name]
        names = {c.name for c in table.columns}
        for column in (*entry.personal_columns, *entry.plain_columns):
            assert column in names, f"{table.name}.{column} is in the data map but not the table"
        unclassified = [
            c
            for c in _free_text_columns(table)
            if c not in entry.personal_columns and c not in entry.plain_columns
        ]
        assert not unclassified, (
            f"{table.name}: say in the data map whether {unclassified} can hold personal data"
        )


def test_contact_tables_say_how_to_find_and_erase_rows() -> None:
    for entry in TABLES:
        if entry.subject == "contact":
            assert entry.contact_path and entry.erasure in (
                Erasure.DELETE,
                Erasure.ANONYMISE,
                Erasure.KEEP_AS_PROOF,
            ), entry.table
        else:
            assert entry.erasure is Erasure.NOT_ABOUT_CONTACTS, entry.table
        assert entry.why


def test_a_new_table_with_personal_data_would_fail() -> None:

    table = Table(
        "newsletter_signups",
        MetaData(),
        Column("email", String(320)),
        Column("wish", EncryptedText("x")),
        Column("extra", EncryptedJson("y")),
    )
    assert table.name not in BY_TABLE
    assert _free_text_columns(table) == ["email", "wish", "extra"]
