"""`tresen keys rotate-secret`: a deliberate secret key change, without a manual row delete;
erased people stay suppressed through the previous key."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner, Result

from tests import helpers
from tresen.cli import app
from tresen.ops.keys import KeyMismatch, check_install_keys, fingerprint
from tresen.privacy import suppression
from tresen.runtime import Runtime
from tresen.settings import Settings

ADDRESS = "+49 151 2345 6789"


async def _cli(monkeypatch: pytest.MonkeyPatch, settings: Settings, *args: str) -> Result:
    for name in ("TRESEN_REDIS_URL", "TRESEN_ENCRYPTION_KEYS", "TRESEN_PREVIOUS_SECRET_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRESEN_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("TRESEN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TRESEN_SECRET_KEY", settings.secret_key)
    if settings.previous_secret_keys:
        monkeypatch.setenv("TRESEN_PREVIOUS_SECRET_KEYS", settings.previous_secret_keys)
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: CliRunner().invoke(app, list(args))
    )


async def test_rotating_the_secret_key(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    old = runtime.settings
    ws, _channel = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        await check_install_keys(session, old)
        await suppression.suppress(session, old.secret_key, ws, ADDRESS, "01ERASEDCONTACT")
    new = old.with_overrides(secret_key="the-new-secret-key")
    async with runtime.sessions() as session:
        with pytest.raises(KeyMismatch, match="keys rotate-secret"):
            await check_install_keys(session, new)

    refused = await _cli(monkeypatch, new, "keys", "rotate-secret", "--yes")
    assert refused.exit_code == 2 and "TRESEN_PREVIOUS_SECRET_KEYS" in refused.output

    rotating = new.with_overrides(previous_secret_keys=old.secret_key)
    done = await _cli(monkeypatch, rotating, "keys", "rotate-secret", "--yes")
    assert done.exit_code == 0, done.output
    assert fingerprint(b"the-new-secret-key") in done.output
    assert "the-new-secret-key" not in done.output and old.secret_key not in done.output
    again = await _cli(monkeypatch, rotating, "keys", "rotate-secret", "--yes")
    assert again.exit_code == 0 and "nothing changed" in again.output
    shown = await _cli(monkeypatch, rotating, "keys", "show")
    assert shown.exit_code == 0 and fingerprint(old.secret_key.encode()) in shown.output
    assert old.secret_key not in shown.output

    async with runtime.sessions() as session:
        await check_install_keys(session, rotating)  # the new key is the install's now
        with pytest.raises(KeyMismatch):
            await check_install_keys(session, old)
        # The erased person stays suppressed through the previous key, and only through it.
        assert await suppression.is_suppressed(session, rotating.suppression_keys, ws, ADDRESS)
        assert not await suppression.is_suppressed(session, new.suppression_keys, ws, ADDRESS)
        assert await suppression.refused_imports(
            session, rotating.suppression_keys, ws, ["+4915123456789", "+49 170 0000000"]
        ) == {"+4915123456789"}
