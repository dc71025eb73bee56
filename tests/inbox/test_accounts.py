"""Accounts: argon2 passwords, lockout, revocable sessions."""

from __future__ import annotations

import pyotp
import pytest

from tests import helpers
from tresen.db.tables import User
from tresen.db.types import utcnow
from tresen.inbox import accounts
from tresen.runtime import Runtime

PASSWORD = "richtig-langes-passwort"


async def _user(runtime: Runtime, role: str = "agent", email: str = "kim@laden.example") -> User:
    ws, _ = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        return await accounts.add_user(session, ws, email, role, PASSWORD)


async def test_add_user_validates(runtime: Runtime) -> None:
    user = await _user(runtime)
    assert user.password_hash.startswith("$argon2") and PASSWORD not in user.password_hash
    async with runtime.sessions() as session, session.begin():
        for email, role, password, message in [
            ("kim@laden.example", "agent", PASSWORD, "exists already"),
            ("not-an-email", "agent", PASSWORD, "not an e-mail"),
            ("a@b.example", "boss", PASSWORD, "role must be"),
            ("a@b.example", "agent", "kurz", "at least 10"),
        ]:
            with pytest.raises(accounts.AccountError, match=message):
                await accounts.add_user(session, user.workspace_id, email, role, password)


async def test_login_session_logout(runtime: Runtime) -> None:
    await _user(runtime)
    async with runtime.sessions() as session, session.begin():
        signed = await accounts.login(session, " KIM@laden.example ", PASSWORD)
        assert signed is not None
    async with runtime.sessions() as session, session.begin():
        assert (await accounts.user_for_token(session, signed.token)).id == signed.user.id  # type: ignore[union-attr]
        await accounts.logout(session, signed.token)
    async with runtime.sessions() as session:
        assert await accounts.user_for_token(session, signed.token) is None
        assert await accounts.user_for_token(session, "made-up") is None


async def test_failures_are_counted_without_locking_and_reset_revokes_sessions(
    runtime: Runtime,
) -> None:
    user = await _user(runtime)
    async with runtime.sessions() as session, session.begin():
        signed = await accounts.login(session, user.email, PASSWORD)
    assert signed is not None
    for _ in range(6):
        async with runtime.sessions() as session, session.begin():
            assert await accounts.login(session, user.email, "falsch-falsch-falsch") is None
    async with runtime.sessions() as session:
        assert await accounts.failures_in_a_row(session, user.email) == 6
    async with runtime.sessions() as session, session.begin():
        assert await accounts.login(session, user.email, PASSWORD) is not None, (
            "never locked: anyone could lock anyone out (limits are per account and client)"
        )
        await accounts.set_password(session, user.id, "ein-neues-langes-passwort")
    async with runtime.sessions() as session:
        assert await accounts.failures_in_a_row(session, user.email) == 0
        assert await accounts.user_for_token(session, signed.token) is None, (
            "a reset ends old sessions"
        )


async def test_expired_session_is_refused(runtime: Runtime) -> None:
    user = await _user(runtime)
    async with runtime.sessions() as session, session.begin():
        signed = await accounts.login(session, user.email, PASSWORD)
    assert signed is not None
    async with runtime.sessions() as session:
        assert (
            await accounts.user_for_token(
                session, signed.token, now=utcnow() + accounts.SESSION_LIFETIME
            )
            is None
        )


async def test_two_factor_sign_in(runtime: Runtime) -> None:

    user = await _user(runtime)
    async with runtime.sessions() as session, session.begin():
        uri = await accounts.enable_totp(session, user.id, issuer="Laden")
    secret = pyotp.parse_uri(uri).secret
    assert uri.startswith("otpauth://totp/") and "Laden" in uri
    async with runtime.sessions() as session, session.begin():
        assert await accounts.login(session, user.email, PASSWORD) is None, "the code is required"
        assert (
            await accounts.login(session, user.email, PASSWORD, code="000000") is None
            or pyotp.TOTP(secret).now() == "000000"
        )
        assert (
            await accounts.login(session, user.email, PASSWORD, code=pyotp.TOTP(secret).now())
            is not None
        )
        await accounts.disable_totp(session, user.id)
        assert await accounts.login(session, user.email, PASSWORD) is not None


def test_the_unknown_address_hash_costs_what_a_real_one_costs() -> None:
    """Signing in with an unknown e-mail verifies against a written-out hash; it must carry the
    hasher's current parameters, or that case would be faster than a wrong password."""
    assert not accounts._hasher.check_needs_rehash(accounts._DUMMY_HASH)
    assert accounts._verify(accounts._DUMMY_HASH, "tresen-timing-equaliser")
