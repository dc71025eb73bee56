"""API bearer tokens: created once, shown once, stored as a hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import ApiToken
from tresen.db.types import utcnow
from tresen.db.upsert import rowcount
from tresen.domain.errors import DomainError
from tresen.domain.ids import new_id
from tresen.privacy import audit

SCOPE_MEANINGS: dict[str, str] = {
    "conversations:read": "read conversations and their messages",
    "contacts:read": "read contacts and their addresses",
    "contacts:write": "merge contacts and undo a merge",
    "messages:send": "send messages (free text, templates, media, buttons)",
    "channels:read": "list the connected channels",
    "jobs:manage": "see and retry jobs that exhausted their retries",
    "privacy:export": "export everything stored about a contact (Art. 15, 20 GDPR)",
    "privacy:erase": "erase a contact (Art. 17 GDPR)",
    "privacy:restrict": "restrict and release the processing of a contact (Art. 18 GDPR)",
    "subscriptions:manage": "manage topics, subscriptions (double opt-in) and link-tracking consent",
    "notifications:send": "send transactional notifications and read their delivery status",
    "tokens:manage": "list the workspace's API tokens and revoke one",
}
"""Every API scope and what it allows (the docs' scope table is generated from this)."""
SCOPES = tuple(SCOPE_MEANINGS)
TOKEN_PREFIX = "tresen_"


class TokenError(DomainError):
    """A token request names an unknown scope or an empty name."""


@dataclass(frozen=True)
class Principal:
    """Who is calling the API, and what they may do."""

    token_id: str
    workspace_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """Whether this caller holds the scope."""
        return scope in self.scopes


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def expand_scopes(requested: list[str]) -> list[str]:
    """Validate scopes; `all` stands for every scope."""
    if not requested:
        raise TokenError(
            "no_scope",
            "give at least one --scope; known scopes: all, {scopes}",
            params={"scopes": ", ".join(SCOPES)},
        )
    out: list[str] = []
    for scope in requested:
        if scope == "all":
            out.extend(SCOPES)
        elif scope in SCOPES:
            out.append(scope)
        else:
            raise TokenError(
                "unknown_scope",
                "unknown scope {scope!r}; known scopes: all, {scopes}",
                params={"scope": scope, "scopes": ", ".join(SCOPES)},
            )
    return sorted(set(out))


@dataclass(frozen=True)
class TokenInfo:
    """What can be shown of a token (never its value)."""

    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def state(self) -> str:
        """active, expired or revoked."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"


async def create_token(
    session: AsyncSession,
    workspace_id: str,
    name: str,
    scopes: list[str],
    expires_in: timedelta | None = None,
) -> str:
    """Store a new token and return its secret value (shown only this once)."""
    if not name.strip():
        raise TokenError("token_name_empty", "a token needs a name")
    if expires_in is not None and expires_in <= timedelta(0):
        raise TokenError("token_lifetime_not_positive", "a token's lifetime must be positive")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = new_id()
    now = utcnow()
    session.add(
        ApiToken(
            id=token_id,
            workspace_id=workspace_id,
            name=name.strip(),
            token_hash=hash_token(token),
            scopes={"scopes": expand_scopes(scopes)},
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
        )
    )
    await audit.admin_action(
        session, workspace_id, "token.create", "token", token_id, scopes=expand_scopes(scopes)
    )
    return token


async def authenticate(session: AsyncSession, token: str) -> Principal | None:
    """The principal behind a bearer token, or None when unknown, revoked or expired."""
    row = await session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
        )
    )
    if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
        return None
    return Principal(
        token_id=row.id,
        workspace_id=row.workspace_id,
        scopes=frozenset(row.scopes.get("scopes", [])),
    )


async def list_tokens(session: AsyncSession, workspace_id: str) -> list[TokenInfo]:
    """The workspace's tokens, newest first (revoked and expired ones too)."""
    rows = await session.scalars(
        select(ApiToken)
        .where(ApiToken.workspace_id == workspace_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return [
        TokenInfo(
            id=row.id,
            name=row.name,
            scopes=list(row.scopes.get("scopes", [])),
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )
        for row in rows
    ]


async def revoke_token(session: AsyncSession, workspace_id: str, token_id: str) -> bool:
    """Revoke one of the workspace's tokens by id; False when unknown or already revoked."""
    result = await session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            ApiToken.workspace_id == workspace_id,
            ApiToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    if not rowcount(result):
        return False
    await audit.admin_action(session, workspace_id, "token.revoke", "token", token_id)
    return True
