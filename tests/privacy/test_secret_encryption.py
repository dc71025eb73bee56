"""Secrets (channel tokens and passwords, the webhook secret, TOTP) are not in the database bytes."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import Text, select, type_coerce

from tests import helpers
from tests.inbox.test_pages import _user
from tests.privacy.test_encryption import K1, K2, _stored_bytes, keys  # noqa: F401
from tresen.db.migrate import alembic_config
from tresen.db.tables import ChannelRow, User
from tresen.domain.ids import new_id
from tresen.inbox import accounts
from tresen.integrations import notifications
from tresen.privacy import encryption
from tresen.runtime import Runtime

SECRETS = {
    "auth_token": "SmsAuthCanary7Hq",
    "smtp_password": "SmtpPassCanary7Hq",
    "imap_password": "ImapPassCanary7Hq",
    "app_secret": "AppSecretCanary7Hq",
    "page_access_token": "PageTokenCanary7Hq",
    "bot_token": "BotTokenCanary7Hq",
    "password": "XmppPassCanary7Hq",
}


async def _seed_secrets(runtime: Runtime) -> tuple[str, str, str, str]:
    """A channel config full of secrets, a webhook secret and a TOTP secret."""
    ws, channel = await helpers.seed_whatsapp(runtime)
    user_id = await _user(runtime, channel, "kim@laden.example", "admin")
    channel_id = new_id()
    async with runtime.sessions() as session, session.begin():
        session.add(
            ChannelRow(
                id=channel_id,
                workspace_id=ws,
                kind="sms",
                name="Secrets",
                config={"account_sid": "AC123", "nested": {"secret": "NestedCanary7Hq"}, **SECRETS},
            )
        )
        hook_secret = await notifications.set_webhook(session, ws, "https://shop.example/hook")
        await accounts.enable_totp(session, user_id)
    async with runtime.sessions() as session:
        totp = await session.scalar(select(User.totp_secret).where(User.id == user_id))
    assert hook_secret and totp
    return ws, channel_id, hook_secret, totp


async def _config(runtime: Runtime, channel_id: str) -> dict[str, Any]:
    async with runtime.sessions() as session:
        row = await session.get(ChannelRow, channel_id)
    assert row is not None
    return row.config


def _needles(hook_secret: str, totp: str) -> list[bytes]:
    return [v.encode() for v in (*SECRETS.values(), "NestedCanary7Hq", hook_secret, totp)]


async def test_secrets_are_sealed_and_read_back(runtime: Runtime, keys) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    keys(K1)
    _, channel_id, hook_secret, totp = await _seed_secrets(runtime)
    stored = await _stored_bytes(runtime)
    assert b"AC123" in stored and b"https://shop.example/hook" in stored, "the rest stays plain"
    leaked = [n for n in _needles(hook_secret, totp) if n in stored]
    assert leaked == []
    config = await _config(runtime, channel_id)
    assert config["auth_token"] == SECRETS["auth_token"]
    assert config["nested"]["secret"] == "NestedCanary7Hq"
    async with runtime.sessions() as session:
        raw = await session.scalar(
            select(type_coerce(User.totp_secret, Text)).where(User.totp_secret.is_not(None))
        )
    assert raw is not None and raw.startswith("tresen:enc1:k1:")

    keys(f"{K2},{K1}")
    assert await encryption.stale_count(runtime.sessions, runtime.files) == 4
    await encryption.rotate(runtime.engine, runtime.sessions, runtime.files)
    assert await encryption.stale_count(runtime.sessions, runtime.files) == 0
    keys(K2)  # the old key is gone; the secrets still read
    assert (await _config(runtime, channel_id))["password"] == SECRETS["password"]


async def test_the_migration_seals_secrets_of_an_existing_install(runtime: Runtime, keys) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    _, _, hook_secret, totp = await _seed_secrets(runtime)  # written in plaintext
    needles = _needles(hook_secret, totp)
    before = await _stored_bytes(runtime)
    assert all(n in before for n in needles)
    keys(K1)
    cfg = alembic_config(runtime.engine.url.render_as_string(hide_password=False))

    def migrate(connection: object, target: str, up: bool) -> None:
        cfg.attributes["connection"] = connection
        (command.upgrade if up else command.downgrade)(cfg, target)

    async with runtime.engine.begin() as connection:
        await connection.run_sync(migrate, "0021_consent_held", False)
    async with runtime.engine.begin() as connection:
        await connection.run_sync(migrate, "head", True)
    await encryption.compact(runtime.engine)
    stored = await _stored_bytes(runtime)
    assert [n for n in needles if n in stored] == []
