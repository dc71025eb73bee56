"""Backup and restore end to end on SQLite and PostgreSQL: conversations, media files and the
audit chain hold; a restore without the right key is refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from tests import helpers
from tests.ops.conftest import another_postgres
from tresen.cli import app
from tresen.db.tables import Conversation, Message
from tresen.integrations.tokens import create_token
from tresen.runtime import Runtime
from tresen.settings import Settings


async def _cli(monkeypatch: pytest.MonkeyPatch, settings: Settings, *args: str) -> Result:
    for name in ("TRESEN_REDIS_URL", "TRESEN_ENCRYPTION_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRESEN_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("TRESEN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TRESEN_SECRET_KEY", settings.secret_key)
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: CliRunner().invoke(app, list(args))
    )


async def test_backup_and_restore_round_trip(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    async with helpers.client_for(runtime) as client:
        body = helpers.dumps(
            helpers.wa_envelope(messages=[helpers.wa_text("wamid.b1", "4915100000001", "Grüße 👋")])
        )
        await client.post(
            f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
        )
    async with runtime.sessions() as session, session.begin():
        await create_token(session, ws, "shop", ["conversations:read"])  # one audit entry
    media = runtime.settings.data_dir / "media" / ws / "bild.jpg"
    media.parent.mkdir(parents=True, exist_ok=True)
    media.write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 40)
    (runtime.settings.data_dir / "secret_key").write_text("never copied")

    made = await _cli(monkeypatch, runtime.settings, "backup", str(tmp_path / "backup"))
    assert made.exit_code == 0, made.output
    assert "TRESEN_SECRET_KEY  " in made.output
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert [f["path"] for f in manifest["files"]] == [f"media/{ws}/bild.jpg"]
    assert "never copied" not in (tmp_path / "backup").joinpath("manifest.json").read_text()

    async with contextlib.AsyncExitStack() as stack:
        if runtime.settings.uses_postgres:
            target_url = await stack.enter_async_context(another_postgres())
        else:
            target_url = f"sqlite+aiosqlite:///{tmp_path / 'restored' / 'tresen.db'}"
        await _restore_and_check(monkeypatch, runtime, tmp_path, ws, media, target_url)


async def _restore_and_check(
    monkeypatch: pytest.MonkeyPatch,
    runtime: Runtime,
    tmp_path: Path,
    ws: str,
    media: Path,
    target_url: str,
) -> None:
    target = runtime.settings.with_overrides(
        database_url=target_url, data_dir=tmp_path / "restored"
    )
    wrong = target.with_overrides(secret_key="another-key")
    refused = await _cli(monkeypatch, wrong, "restore", str(tmp_path / "backup"))
    assert refused.exit_code == 2
    assert "TRESEN_SECRET_KEY must hold the key with fingerprint" in refused.output
    restored = await _cli(monkeypatch, target, "restore", str(tmp_path / "backup"))
    assert restored.exit_code == 0, restored.output

    assert (target.data_dir / "media" / ws / "bild.jpg").read_bytes() == media.read_bytes()
    assert not (target.data_dir / "secret_key").exists()
    copy = Runtime.create(target)
    try:
        async with copy.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Conversation)) == 1
            assert await session.scalar(select(Message.body)) == "Grüße 👋"
    finally:
        await copy.close()
    verified = await _cli(monkeypatch, target, "audit", "verify")
    assert verified.exit_code == 0 and "1 entries\tok" in verified.output, verified.output
    again = await _cli(monkeypatch, target, "restore", str(tmp_path / "backup"))
    assert again.exit_code == 2 and "exist" in again.output


def test_a_damaged_backup_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("TRESEN_DATABASE_URL", "TRESEN_REDIS_URL", "TRESEN_ENCRYPTION_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRESEN_SECRET_KEY", "k")
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    (tmp_path / "data" / "exports").mkdir()
    (tmp_path / "data" / "exports" / "a.zip").write_bytes(b"PK")
    assert runner.invoke(app, ["backup", str(tmp_path / "b")]).exit_code == 0
    (tmp_path / "b" / "files" / "exports" / "a.zip").write_bytes(b"PX")
    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "other"))
    result = runner.invoke(app, ["restore", str(tmp_path / "b")])
    assert result.exit_code == 2 and "a.zip is missing or damaged" in result.output
    assert not (tmp_path / "other" / "tresen.db").exists()
    busy = runner.invoke(app, ["backup", str(tmp_path / "b")])
    assert busy.exit_code == 2 and "is not empty" in busy.output
