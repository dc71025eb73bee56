"""Encryption at rest: re-encrypt every stored value and file under the current key.

Resumable by construction: each batch commits on its own, and a value or file already under
the current key is left alone, so a run that was interrupted simply runs again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import JSON, Table, Text, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tresen.db import crypto
from tresen.db.tables import BotConversation, ChannelRow, Message, Note, User, Workspace
from tresen.db.types import ENC_KEY, SecretFieldsJson, sealed_json
from tresen.privacy.erasure import compact, merge_search_index
from tresen.storage import FileStore

log = logging.getLogger(__name__)
BATCH = 500
ENCRYPTED_COLUMNS: tuple[tuple[Table, str, tuple[str, ...]], ...] = (
    (cast(Table, Message.__table__), "id", ("body", "payload")),
    (cast(Table, Note.__table__), "id", ("body",)),
    (cast(Table, BotConversation.__table__), "conversation_id", ("handover_summary",)),
    (cast(Table, ChannelRow.__table__), "id", ("config",)),
    (cast(Table, Workspace.__table__), "id", ("settings",)),
    (cast(Table, User.__table__), "id", ("totp_secret",)),
)
"""Every column stored encrypted (and its table's key); media files are done separately."""


class NoKeys(RuntimeError):
    """TRESEN_ENCRYPTION_KEYS is empty: there is nothing to rotate to."""


@dataclass
class FileCounts:
    """What a pass over the file store did (counts, and the keys it could not open)."""

    rewritten: int = 0
    current: int = 0
    """Already under the current key: not read, not written."""
    gone: int = 0
    """Deleted or replaced while the pass ran (left alone)."""
    failed: int = 0
    """Under a key not in TRESEN_ENCRYPTION_KEYS, or altered: left as they are."""
    failed_keys: list[str] = field(default_factory=list)


@dataclass
class RotationReport:
    """How many values and files a run rewrote (counts only)."""

    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    file_counts: FileCounts = field(default_factory=FileCounts)

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


def needs_rewrite(value: Any, current: str | None, column_type: Any = None) -> bool:
    """Whether a stored value is not yet as the current setting wants it."""
    if value is None:
        return False
    if isinstance(column_type, SecretFieldsJson):
        return any(key != current for key in column_type.key_ids(value))
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
                stale = [
                    c for c in columns if needs_rewrite(getattr(row, c), current, table.c[c].type)
                ]
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


FILES_PREFIX = "media/"
"""Every sealed file is under media/ (stored media, staged mail attachments, canned files)."""
_HEADER = len(crypto.FILE_MAGIC) + 1 + 32
"""Enough leading bytes to read a sealed file's key id (ids are at most 32 characters)."""
FAILED_SHOWN = 20


def _rotate_object(files: FileStore, key: str, keyring: crypto.Keyring) -> str:
    """Re-seal one file under the current key; returns which FileCounts field it counts in."""
    head = files.head(key, _HEADER)
    if head is None:
        return "gone"
    if crypto.file_key_id(head) == keyring.current:
        return "current"
    fetched = files.fetch(key)
    if fetched is None:
        return "gone"
    if crypto.file_key_id(fetched.data) == keyring.current:
        return "current"
    try:
        plain = crypto.open_bytes(fetched.data)
    except crypto.DecryptionError:
        return "failed"
    sealed = keyring.seal_file(plain) if keyring.encrypts else plain
    return "rewritten" if files.replace(key, sealed, fetched.version) else "gone"


def rotate_files(files: FileStore, keyring: crypto.Keyring) -> FileCounts:
    """Re-seal every file under media/ not under the current key, one file in memory at a time."""
    # Re-runs read only the first bytes of finished files; `replace` never revives an erased one.
    counts = FileCounts()
    for item in files.listing(FILES_PREFIX):
        outcome = _rotate_object(files, item.key, keyring)
        setattr(counts, outcome, getattr(counts, outcome) + 1)
        if outcome == "failed":
            log.warning("media file %s does not open with the configured keys", item.key)
            if len(counts.failed_keys) < FAILED_SHOWN:
                counts.failed_keys.append(item.key)
    return counts


async def rotate(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], files: FileStore
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
    report.file_counts = await asyncio.to_thread(rotate_files, files, keyring)
    report.files = report.file_counts.rewritten
    log.info("re-encrypted %d media files", report.files)
    if report.total():
        async with sessions() as session, session.begin():
            await merge_search_index(session)
        await compact(engine)
    return report


async def stale_count(sessions: async_sessionmaker[AsyncSession], files: FileStore) -> int:
    """Values and files not yet under the current key (0 once a rotation completed)."""
    keyring = crypto.active()
    current = keyring.current if keyring is not None else None
    stale = 0
    async with sessions() as session:
        for table, _key, columns in ENCRYPTED_COLUMNS:
            raw = [_stored(table, c) for c in columns]
            result = await session.stream(select(*raw))
            async for row in result:
                stale += sum(
                    needs_rewrite(getattr(row, c), current, table.c[c].type) for c in columns
                )
    return stale + await asyncio.to_thread(_stale_files, files, current)


def _stale_files(files: FileStore, current: str | None) -> int:
    stale = 0
    for item in files.listing(FILES_PREFIX):
        head = files.head(item.key, _HEADER)
        stale += head is not None and crypto.file_key_id(head) != current
    return stale
