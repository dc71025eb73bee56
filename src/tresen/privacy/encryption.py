"""Encryption at rest: re-encrypt every stored value and file under the current key.

Resumable by construction: each batch commits on its own, and a value or file already under
the current key is left alone, so a run that was interrupted simply runs again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import JSON, Table, Text, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tresen.db import crypto
from tresen.db.tables import BotConversation, Message, Note
from tresen.db.types import ENC_KEY, sealed_json
from tresen.privacy.erasure import compact, merge_search_index

log = logging.getLogger(__name__)
BATCH = 500
ENCRYPTED_COLUMNS: tuple[tuple[Table, str, tuple[str, ...]], ...] = (
    (cast(Table, Message.__table__), "id", ("body", "payload")),
    (cast(Table, Note.__table__), "id", ("body",)),
    (cast(Table, BotConversation.__table__), "conversation_id", ("handover_summary",)),
)
"""Every column stored encrypted (and its table's key); media files are done separately."""


class NoKeys(RuntimeError):
    """TRESEN_ENCRYPTION_KEYS is empty: there is nothing to rotate to."""


@dataclass
class RotationReport:
    """How many values and files a run rewrote (counts only)."""

    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0

    def total(self) -> int:
        """All rewritten values and files."""
        return sum(self.rows.values()) + self.files


async def after_batch(table: str, rewritten: int) -> None:
    """Called after each committed batch (a seam for interruption tests; does nothing)."""


def _stored(table: Table, name: str) -> Any:
    """The column as stored (ciphertext), without the decrypting column type."""
    column = table.c[name]
    plain_type = JSON() if isinstance(getattr(column.type, "impl", None), JSON) else Text()
    return type_coerce(column, plain_type).label(name)


def _key_of(value: Any) -> str | None:
    """The key id a stored value is under; None for plaintext."""
    if isinstance(value, str):
        return crypto.key_id_of(value)
    if sealed_json(value):
        return crypto.key_id_of(value[ENC_KEY])
    return None


def needs_rewrite(value: Any, current: str | None) -> bool:
    """Whether a stored value is not yet as the current setting wants it."""
    if value is None:
        return False
    return _key_of(value) != current


async def _rotate_table(
    sessions: async_sessionmaker[AsyncSession],
    table: Table,
    key: str,
    columns: tuple[str, ...],
    current: str | None,
) -> int:
    pk = table.c[key]
    raw = [_stored(table, c) for c in columns]
    after: str | None = None
    rewritten = 0
    while True:
        async with sessions() as session, session.begin():
            stmt = select(pk, *raw).order_by(pk).limit(BATCH)
            if after is not None:
                stmt = stmt.where(pk > after)
            rows = (await session.execute(stmt)).all()
            if not rows:
                return rewritten
            dialect = session.get_bind().dialect
            changed = 0
            for row in rows:
                stale = [c for c in columns if needs_rewrite(getattr(row, c), current)]
                if not stale:
                    continue
                values = {
                    c: cast(Any, table.c[c].type).process_result_value(getattr(row, c), dialect)
                    for c in stale
                }
                await session.execute(update(table).where(pk == row[0]).values(**values))
                changed += 1
            after = rows[-1][0]
        rewritten += changed
        await after_batch(table.name, rewritten)


def _rotate_file(path: Path, current: str | None) -> bool:
    content = path.read_bytes()
    if crypto.file_key_id(content) == current:
        return False
    plain = crypto.open_bytes(content)
    keyring = crypto.active()
    sealed = keyring.seal_file(plain) if keyring is not None and keyring.encrypts else plain
    temporary = path.with_name(f".{path.name}.rotate")
    with temporary.open("wb") as f:
        f.write(sealed)
        f.flush()
        os.fsync(f.fileno())
    temporary.replace(path)
    return True


def rotate_files(data_dir: Path, current: str | None) -> int:
    """Rewrite every file under DATA_DIR/media that is not under the current key."""
    folder = data_dir / "media"
    if not folder.is_dir():
        return 0
    count = 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.endswith((".part", ".rotate")):
            continue
        with contextlib.suppress(FileNotFoundError):  # erased or swept meanwhile
            count += _rotate_file(path, current)
    return count


async def rotate(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], data_dir: Path
) -> RotationReport:
    """Bring every encrypted column and media file under the current key (or to plaintext
    when the keys begin with "none"), then push the old bytes out of the database files."""
    keyring = crypto.active()
    if keyring is None:
        raise NoKeys(
            "set TRESEN_ENCRYPTION_KEYS first (create a key with `tresen privacy new-key`)"
        )
    report = RotationReport()
    for table, key, columns in ENCRYPTED_COLUMNS:
        report.rows[table.name] = await _rotate_table(
            sessions, table, key, columns, keyring.current
        )
        log.info("re-encrypted %d rows of %s", report.rows[table.name], table.name)
    report.files = rotate_files(data_dir, keyring.current)
    log.info("re-encrypted %d media files", report.files)
    if report.total():
        async with sessions() as session, session.begin():
            await merge_search_index(session)
        await compact(engine)
    return report


async def stale_count(sessions: async_sessionmaker[AsyncSession], data_dir: Path) -> int:
    """Values and files not yet under the current key (0 once a rotation completed)."""
    keyring = crypto.active()
    current = keyring.current if keyring is not None else None
    stale = 0
    async with sessions() as session:
        for table, _key, columns in ENCRYPTED_COLUMNS:
            raw = [_stored(table, c) for c in columns]
            result = await session.stream(select(*raw))
            async for row in result:
                stale += sum(needs_rewrite(getattr(row, c), current) for c in columns)
    folder = data_dir / "media"
    if folder.is_dir():
        for path in folder.rglob("*"):
            if path.is_file() and crypto.file_key_id(path.read_bytes()) != current:
                stale += 1
    return stale
