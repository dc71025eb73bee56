"""Encryption at rest: message texts, notes and files never reach the disk in plaintext; keys
rotate (resumably); erasure still leaves no trace."""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Text, func, select, text, type_coerce, update

from tests import helpers
from tests.inbox.test_pages import _login, _user
from tests.privacy.test_erasure import MARKER, _pg_dump, assert_gone_from_storage, seed_contact
from tresen.db import crypto
from tresen.db.tables import (
    BotConversation,
    ChannelRow,
    Contact,
    ContactIdentity,
    Conversation,
    Media,
    Message,
    Note,
)
from tresen.domain.ids import new_id
from tresen.inbox.search import search
from tresen.media import store
from tresen.privacy import encryption, erasure
from tresen.privacy.export import write_export
from tresen.runtime import Runtime

BODY = "Herzwunsch3Vq"  # only in message texts, payloads, notes, summaries and file contents
K1 = f"k1={crypto.new_key()}"
K2 = f"k2={crypto.new_key()}"


@pytest.fixture
def keys(runtime: Runtime) -> Iterator[callable]:  # type: ignore[valid-type]
    """Switch the keys of the running test (as a restart with new settings would)."""

    def use(value: str) -> None:
        runtime.settings = runtime.settings.with_overrides(encryption_keys=value)
        crypto.use(crypto.parse_keys(value))

    yield use
    crypto.use(None)


async def _seed_texts(runtime: Runtime, channel: ChannelRow) -> tuple[str, str]:
    """A contact with BODY in a message, its payload, a note, a hand-over summary and a file."""
    ws = channel.workspace_id
    media_id = new_id()
    saved = store.save(runtime.files, ws, media_id, b"%PDF-1.4 " + BODY.encode() * 30, None, 10**6)
    async with runtime.sessions() as session, session.begin():
        contact = Contact(id=new_id(), workspace_id=ws, display_name="Klara Klartext")
        session.add(contact)
        await session.flush()
        identity_id = new_id()

        session.add(
            ContactIdentity(
                id=identity_id,
                workspace_id=ws,
                contact_id=contact.id,
                channel_id=channel.id,
                address="4915100055555",
            )
        )
        await session.flush()
        conv = Conversation(
            id=new_id(),
            workspace_id=ws,
            channel_id=channel.id,
            contact_id=contact.id,
            identity_id=identity_id,
        )
        session.add(conv)
        await session.flush()
        message = Message(
            id=new_id(),
            workspace_id=ws,
            conversation_id=conv.id,
            channel_id=channel.id,
            direction="inbound",
            sender_kind="contact",
            content_kind="text",
            body=f"Mein {BODY} bitte",
            payload={"text": {"body": f"raw {BODY}"}},
            state="received",
        )
        session.add(message)
        await session.flush()
        session.add(Note(workspace_id=ws, conversation_id=conv.id, body=f"Notiz {BODY}"))
        session.add(
            BotConversation(
                conversation_id=conv.id, workspace_id=ws, handover_summary=f"will {BODY}"
            )
        )
        session.add(
            Media(
                id=media_id,
                workspace_id=ws,
                message_id=message.id,
                kind="inbound",
                state="stored",
                content_type=saved.content_type,
                size=saved.size,
                sha256=saved.sha256,
                filename="brief.pdf",
                path=saved.path,
            )
        )
    return contact.id, conv.id


async def _stored_bytes(runtime: Runtime) -> bytes:
    """What the database holds on disk (SQLite file and WAL) or in a pg_dump."""
    if runtime.engine.dialect.name == "sqlite":
        db = Path(runtime.settings.effective_database_url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    return await asyncio.to_thread(_pg_dump, runtime.settings.database_url)


def _data_dir_bytes(runtime: Runtime) -> bytes:
    return b"".join(p.read_bytes() for p in runtime.settings.data_dir.rglob("*") if p.is_file())


async def _read_back(runtime: Runtime, ws: str, contact_id: str, tmp: Path) -> None:
    """The application reads everything back in plaintext (an export holds it)."""
    async with runtime.sessions() as session:
        await write_export(session, ws, contact_id, runtime.files, tmp)
    with zipfile.ZipFile(tmp) as archive:
        lines = [json.loads(x) for x in archive.read("messages.jsonl").splitlines()]
        assert lines[0]["body"] == f"Mein {BODY} bitte"
        assert lines[0]["payload"] == {"text": {"body": f"raw {BODY}"}}
        assert json.loads(archive.read("data.json"))["notes"][0]["body"] == f"Notiz {BODY}"
        pdf = [n for n in archive.namelist() if n.endswith("brief.pdf")]
        assert archive.read(pdf[0]).startswith(b"%PDF-1.4 " + BODY.encode())
    async with runtime.sessions() as session:
        summary = await session.scalar(select(BotConversation.handover_summary))
    assert summary == f"will {BODY}"


def test_keys_are_checked_and_ciphertexts_verify() -> None:
    ring = crypto.parse_keys(f"{K2}, {K1}")
    assert ring is not None and ring.current == "k2" and set(ring.keys) == {"k1", "k2"}
    token = ring.encrypt(b"hallo", b"messages.body")
    assert token.startswith("tresen:enc1:k2:") and b"hallo" not in token.encode()
    assert crypto.parse_keys(K1).decrypt(token, b"x") if False else True
    assert ring.decrypt(token, b"messages.body") == b"hallo"
    with pytest.raises(crypto.DecryptionError):
        ring.decrypt(token, b"notes.body")  # bound to its column
    with pytest.raises(crypto.DecryptionError):
        ring.decrypt(
            token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), b"messages.body"
        )
    with pytest.raises(crypto.DecryptionError, match="unknown key"):
        crypto.parse_keys(K1).decrypt(token, b"messages.body")  # type: ignore[union-attr]
    sealed = ring.seal_file(b"file")
    assert crypto.file_key_id(sealed) == "k2" and ring.open_file(sealed) == b"file"
    for bad in ("k1", "k 1=abc", f"k1={crypto.new_key()[:10]}", f"{K1},{K1}", "none"):
        with pytest.raises(ValueError):
            crypto.parse_keys(bad)
    assert crypto.parse_keys("") is None
    decrypt_only = crypto.parse_keys(f"none,{K1}")
    assert decrypt_only is not None and not decrypt_only.encrypts


async def test_texts_and_files_are_not_on_disk_in_plaintext_and_erasure_leaves_no_trace(
    runtime: Runtime,
    keys,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    keys(K1)
    ws, channel = await helpers.seed_whatsapp(runtime)
    contact_id, _ = await _seed_texts(runtime, channel)
    canary = await seed_contact(runtime, channel, MARKER)  # names, addresses, messages, ...
    await seed_contact(runtime, channel, "Keepme4Other", phone="4915199990002")

    stored = await _stored_bytes(runtime)
    assert b"Klara Klartext" in stored  # names stay plain (needed to find people)
    assert BODY.encode() not in stored
    assert f"Meine Kundennummer ist {MARKER}".encode() not in stored
    assert BODY.encode() not in _data_dir_bytes(runtime)
    if runtime.engine.dialect.name == "sqlite":
        async with runtime.sessions() as session:
            hits = await session.scalar(
                text("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH :q"), {"q": BODY}
            )
        assert hits == 0  # the search index holds no plaintext either
    async with runtime.sessions() as session:
        page = await search(session, ws, BODY)
        raw = await session.scalar(select(type_coerce(Message.body, Text)).limit(1))
    assert page.conversations == [] and not page.bodies_searched
    assert raw is not None and raw.startswith("tresen:enc1:k1:")
    await _read_back(runtime, ws, contact_id, tmp_path / "export.zip")

    # The canary test with encryption on: erased, the marker is nowhere (rows, files, dump).
    for erase_id in (canary, contact_id):
        async with runtime.sessions() as session:
            await erasure.erase(
                runtime.engine,
                session,
                secret_key=runtime.settings.secret_key,
                files=runtime.files,
                workspace_id=ws,
                contact_id=erase_id,
                actor_id=None,
                via="test",
            )
    await assert_gone_from_storage(runtime, MARKER.encode(), b"Keepme4Other")
    assert b"Klara Klartext" not in await _stored_bytes(runtime)


async def test_rotation_is_resumable_and_old_keys_can_then_go(
    runtime: Runtime,
    keys,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    keys(K1)
    ws, channel = await helpers.seed_whatsapp(runtime)
    contact_id, _ = await _seed_texts(runtime, channel)
    for i in range(3):
        await seed_contact(runtime, channel, f"Rotate{i}Canary", phone=f"49151999900{i}5")
    keys(f"{K2},{K1}")
    stale = await encryption.stale_count(runtime.sessions, runtime.files)
    assert stale > 100

    calls = 0

    async def crash(table: str, rewritten: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("killed mid-rotation")

    monkeypatch.setattr(encryption, "BATCH", 10)
    monkeypatch.setattr(encryption, "after_batch", crash)
    with pytest.raises(RuntimeError):
        await encryption.rotate(runtime.engine, runtime.sessions, runtime.files)
    left = await encryption.stale_count(runtime.sessions, runtime.files)
    assert 0 < left < stale
    monkeypatch.setattr(encryption, "after_batch", lambda *_: asyncio.sleep(0))
    await encryption.rotate(runtime.engine, runtime.sessions, runtime.files)
    assert await encryption.stale_count(runtime.sessions, runtime.files) == 0
    async with runtime.sessions() as session:
        bodies = list(await session.scalars(select(type_coerce(Message.body, Text))))
    assert bodies and all(b.startswith("tresen:enc1:k2:") for b in bodies)

    keys(K2)  # the old key is gone: everything still reads
    await _read_back(runtime, ws, contact_id, tmp_path / "after.zip")
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Note)) == 4


async def test_plaintext_install_turns_encryption_on_and_off(
    runtime: Runtime,
    keys,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    contact_id, _ = await _seed_texts(runtime, channel)
    await seed_contact(runtime, channel, "Keepme4Other", phone="4915199990002")
    assert BODY.encode() in await _stored_bytes(runtime)

    keys(K1)
    report = await encryption.rotate(runtime.engine, runtime.sessions, runtime.files)
    assert report.rows["messages"] == 33 and report.files >= 1
    assert BODY.encode() not in await _stored_bytes(runtime)
    assert BODY.encode() not in _data_dir_bytes(runtime)
    await _read_back(runtime, ws, contact_id, tmp_path / "on.zip")

    keys(f"none,{K1}")  # decrypt everything, write plaintext from now on
    await encryption.rotate(runtime.engine, runtime.sessions, runtime.files)
    keys("")
    await _read_back(runtime, ws, contact_id, tmp_path / "off.zip")
    assert await encryption.stale_count(runtime.sessions, runtime.files) == 0


async def test_texts_that_look_like_ciphertext_are_stored_as_written(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    contact_id, conv_id = await _seed_texts(runtime, channel)
    tricky = ["tresen:enc1:k1:AAAA", "tresen:raw:x", "tresen:enc1:"]
    payloads = [{"_enc": "tresen:enc1:k1:AAAA"}, {"_raw": 1}, {"_raw": {"_enc": "x"}}]
    async with runtime.sessions() as session, session.begin():
        for body, payload in zip(tricky, payloads, strict=True):
            session.add(
                Message(
                    id=new_id(),
                    workspace_id=ws,
                    conversation_id=conv_id,
                    channel_id=channel.id,
                    direction="inbound",
                    sender_kind="contact",
                    content_kind="text",
                    body=body,
                    payload=payload,
                    state="received",
                )
            )
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(Message.body, Message.payload).where(Message.body.like("tresen:%"))
            )
        ).all()
    assert sorted(r.body for r in rows) == sorted(tricky)
    assert sorted(json.dumps(r.payload) for r in rows) == sorted(json.dumps(p) for p in payloads)
    assert contact_id


async def test_files_are_sealed_when_written_and_served_in_plaintext(
    runtime: Runtime,
    keys,  # type: ignore[no-untyped-def]
) -> None:
    keys(K1)
    _, channel = await helpers.seed_whatsapp(runtime)
    await _seed_texts(runtime, channel)

    await _user(runtime, channel, "chef@laden.de", "admin")
    async with runtime.sessions() as session:
        media_id = await session.scalar(select(Media.id))
        await session.execute(update(Contact).values(consent_state="granted"))
        await session.commit()
    async with helpers.client_for(runtime) as client:
        await _login(client, "chef@laden.de")
        answer = await client.get(f"/inbox/media/{media_id}")
        assert answer.status_code == 200, answer.text
        assert answer.content.startswith(b"%PDF-1.4 " + BODY.encode())
        assert "brief.pdf" in answer.headers["content-disposition"]
    path = next((runtime.settings.data_dir / "media").rglob(media_id))
    assert path.read_bytes().startswith(crypto.FILE_MAGIC)
    assert BODY.encode() not in path.read_bytes()
