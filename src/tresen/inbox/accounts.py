"""Inbox accounts: users with argon2 passwords, lockout, and revocable server-side sessions."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import AuthSession, User
from tresen.db.types import utcnow
from tresen.domain.errors import DomainError
from tresen.domain.ids import new_id
from tresen.privacy import audit

log = logging.getLogger(__name__)

_hasher = PasswordHasher()
# A real hash to verify against when the e-mail is unknown, so both cases take the same time.
# Written out, not computed at import (argon2 takes a third of a second and 64 MB in every
# process); a test checks that it carries the hasher's current parameters.
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$wxF9Uvtgb4mOAOkjLsC2ow$9QBMcCEfmpHQzSwHsf4qz3XKhed7Plc/fyCs5406lfg"
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s]{2,}$")
MIN_PASSWORD = 10
SESSION_LIFETIME = timedelta(hours=12)


class Role(StrEnum):
    """What a person may do in the inbox."""

    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"


class AccountError(DomainError):
    """A user cannot be created or changed as asked; the message says why."""

    default_status = 400


class UnknownUser(AccountError):
    """No such person (in this workspace)."""


@dataclass(frozen=True)
class SignedIn:
    """A user and the session token to put in their cookie."""

    user: User
    token: str


def normalise_email(email: str) -> str:
    """Lower-cased, trimmed e-mail, or AccountError."""
    cleaned = email.strip().lower()
    if not EMAIL.match(cleaned):
        raise AccountError(
            "not_an_email", "not an e-mail address: {email!r}", params={"email": email}
        )
    return cleaned


def check_password(password: str) -> None:
    """Refuse passwords too short to be safe."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(
            "password_too_short",
            "the password needs at least {min} characters",
            params={"min": MIN_PASSWORD},
        )
    if len(password) > 1024:
        raise AccountError("password_too_long", "the password is longer than 1024 characters")


async def add_user(
    session: AsyncSession,
    workspace_id: str,
    email: str,
    role: str,
    password: str,
    *,
    display_name: str | None = None,
    language: str = "de",
) -> User:
    """Create a user; e-mail addresses are unique across the install."""
    address = normalise_email(email)
    try:
        role_value = Role(role)
    except ValueError as exc:
        raise AccountError(
            "unknown_role",
            "role must be admin, supervisor or agent, not {role!r}",
            params={"role": role},
        ) from exc
    if language not in ("de", "en"):
        raise AccountError("unknown_language", "language must be de or en")
    check_password(password)
    taken = await session.scalar(
        select(func.count()).select_from(User).where(User.email == address)
    )
    if taken:
        raise AccountError(
            "user_exists",
            "a user with the e-mail {email} exists already",
            409,
            params={"email": address},
        )
    user = User(
        id=new_id(),
        workspace_id=workspace_id,
        email=address,
        display_name=(display_name or address.split("@")[0]).strip()[:200],
        password_hash=_hasher.hash(password),
        role=role_value.value,
        language=language,
        availability="offline",
        failed_logins=0,
        disabled=False,
        created_at=utcnow(),
    )
    session.add(user)
    await session.flush()
    return user


async def set_password(session: AsyncSession, user_id: str, password: str) -> None:
    """Set a new password (an admin's reset) and end every session of that user."""
    check_password(password)
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(password_hash=_hasher.hash(password), failed_logins=0, locked_until=None)
    )
    await revoke_all_sessions(session, user_id)


async def login(
    session: AsyncSession,
    email: str,
    password: str,
    now: datetime | None = None,
    code: str | None = None,
) -> SignedIn | None:
    """Check credentials, count failures in a row, and open a fresh session.

    Returns None on refusal, so the caller commits the failure count; the reason is never told.
    The account is never locked (anyone could lock anyone out): the web layer limits attempts
    per account and client address and slows down after failures (inbox.signin_limits).
    """
    now = now or utcnow()
    try:
        address = normalise_email(email)
    except AccountError:
        address = ""
    user = await session.scalar(select(User).where(User.email == address)) if address else None
    if user is None or user.disabled:
        _verify(_DUMMY_HASH, password)
        return None
    if not _verify(user.password_hash, password) or not (
        _second_factor_ok(user, code, now) or use_recovery_code(user, code or "")
    ):
        await audit.record(
            session, user.workspace_id, "user.login_failed", subject_type="user", subject_id=user.id
        )
        user.failed_logins += 1
        log.info("sign-in of user %s refused (%d failed in a row)", user.id, user.failed_logins)
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    log.info("user %s signed in", user.id)
    await audit.record(
        session,
        user.workspace_id,
        "user.login",
        actor_id=user.id,
        subject_type="user",
        subject_id=user.id,
    )
    token = secrets.token_urlsafe(32)
    session.add(
        AuthSession(
            id=_token_key(token),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    await session.flush()
    return SignedIn(user=user, token=token)


async def failures_in_a_row(session: AsyncSession, email: str) -> int:
    """Wrong sign-ins of this account since its last success (0 for unknown addresses)."""
    try:
        address = normalise_email(email)
    except AccountError:
        return 0
    count = await session.scalar(select(User.failed_logins).where(User.email == address))
    return int(count or 0)


def _second_factor_ok(user: User, code: str | None, now: datetime) -> bool:
    """True without two-factor, else only for the current (or neighbouring) TOTP code."""
    if not user.totp_secret:
        return True
    cleaned = (code or "").replace(" ", "")
    return cleaned.isdigit() and pyotp.TOTP(user.totp_secret).verify(
        cleaned, for_time=now, valid_window=1
    )


def recovery_hash(code: str) -> str:
    """How a recovery code is stored (SHA-256 of the code as typed, lower case)."""
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()


def use_recovery_code(user: User, code: str) -> bool:
    """Spend one of the person's two-factor recovery codes (True when it was one of theirs)."""
    if not user.totp_secret or not code.strip():
        return False
    hashes = list((user.recovery_codes or {}).get("hashes") or [])
    hashed = recovery_hash(code)
    if hashed not in hashes:
        return False
    hashes.remove(hashed)
    user.recovery_codes = {"hashes": hashes}
    log.info("user %s signed in with a recovery code (%d left)", user.id, len(hashes))
    return True


def password_matches(user: User, password: str) -> bool:
    """Whether the password is the person's current one."""
    return _verify(user.password_hash, password)


async def enable_totp(session: AsyncSession, user_id: str, issuer: str = "tresen") -> str:
    """Turn on two-factor sign-in for a user; returns the otpauth:// URI for their authenticator app."""
    user = await session.get(User, user_id)
    if user is None:
        raise AccountError("no_such_user", "no such user", 404)
    user.totp_secret = pyotp.random_base32()
    await revoke_all_sessions(session, user.id)
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=issuer)


async def disable_totp(session: AsyncSession, user_id: str) -> None:
    """Turn two-factor sign-in off (an admin's decision, e.g. a lost phone)."""
    await session.execute(update(User).where(User.id == user_id).values(totp_secret=None))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def user_for_token(
    session: AsyncSession, token: str, now: datetime | None = None
) -> User | None:
    """The user behind a session cookie, or None when unknown, expired, revoked or disabled."""
    now = now or utcnow()
    if not token or len(token) > 200:
        return None
    row = (
        await session.execute(
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.id == _token_key(token))
        )
    ).first()
    if row is None:
        return None
    auth, user = row
    if auth.revoked_at is not None or auth.expires_at <= now or user.disabled:
        return None
    return user


async def logout(session: AsyncSession, token: str) -> None:
    """End one session."""
    await session.execute(
        update(AuthSession).where(AuthSession.id == _token_key(token)).values(revoked_at=utcnow())
    )


async def revoke_all_sessions(session: AsyncSession, user_id: str) -> None:
    """End every session of a user (password reset, role change, offboarding)."""
    await session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def disable_user(session: AsyncSession, user_id: str) -> None:
    """Stop a person from signing in and end every session of theirs at once."""
    await session.execute(
        update(User).where(User.id == user_id).values(disabled=True, availability="offline")
    )
    await revoke_all_sessions(session, user_id)
    log.info("user %s disabled", user_id)


async def enable_user(session: AsyncSession, user_id: str) -> None:
    """Let a disabled person sign in again (with their password)."""
    await session.execute(
        update(User).where(User.id == user_id).values(disabled=False, failed_logins=0)
    )


async def remove_user(session: AsyncSession, user_id: str) -> None:
    """Delete a person: sessions end, their conversations lose the assignee, notes stay."""
    await revoke_all_sessions(session, user_id)
    await session.execute(delete(User).where(User.id == user_id))
    log.info("user %s removed", user_id)


async def user_by_email(session: AsyncSession, email: str) -> User:
    """The user with this e-mail address, or UnknownUser."""
    user = await session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise UnknownUser(
            "not_found", "no user with the e-mail {email}", 404, params={"email": email}
        )
    return user


async def workspace_users(session: AsyncSession, workspace_id: str) -> list[User]:
    """Everyone of a workspace, by e-mail."""
    return list(
        await session.scalars(
            select(User).where(User.workspace_id == workspace_id).order_by(User.email)
        )
    )


async def workspace_user(session: AsyncSession, workspace_id: str, user_id: str) -> User:
    """One person of this workspace, or AccountError (never someone of another workspace)."""
    user = await session.scalar(
        select(User).where(User.id == user_id, User.workspace_id == workspace_id)
    )
    if user is None:
        raise UnknownUser("not_found", "no such person in this workspace", 404)
    return user
