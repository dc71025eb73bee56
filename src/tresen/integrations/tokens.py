"""API bearer tokens: created once, shown once, stored as a hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import ApiToken
from tresen.db.types import utcnow
from tresen.db.upsert import rowcount
from tresen.domain.ids import new_id

SCOPES = (
    "conversations:read",
    "contacts:read",
    "contacts:write",
    "messages:send",
    "channels:read",
    "jobs:manage",
    "privacy:export",
    "privacy:erase",
    "privacy:restrict",
    "subscriptions:manage",
    "notifications:send",
)
TOKEN_PREFIX = "tresen_"


class TokenError(ValueError):
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
        raise TokenError(f"give at least one --scope; known scopes: all, {', '.join(SCOPES)}")
    out: list[str] = []
    for scope in requested:
        if scope == "all":
            out.extend(SCOPES)
        elif scope in SCOPES:
            out.append(scope)
        else:
            raise TokenError(f"unknown scope {scope!r}; known scopes: all, {', '.join(SCOPES)}")
    return sorted(set(out))


async def create_token(
    session: AsyncSession, workspace_id: str, name: str, scopes: list[str]
) -> str:
    """Store a new token and return its secret value (shown only this once)."""
    if not name.strip():
        raise TokenError("a token needs a name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            id=new_id(),
            workspace_id=workspace_id,
            name=name.strip(),
            token_hash=hash_token(token),
            scopes={"scopes": expand_scopes(scopes)},
            created_at=utcnow(),
        )
    )
    return token


async def authenticate(session: AsyncSession, token: str) -> Principal | None:
    """The principal behind a bearer token, or None when unknown or revoked."""
    row = await session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
        )
    )
    if row is None:
        return None
    return Principal(
        token_id=row.id,
        workspace_id=row.workspace_id,
        scopes=frozenset(row.scopes.get("scopes", [])),
    )


async def revoke_token(session: AsyncSession, token_id: str) -> bool:
    """Revoke a token by id."""
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(rowcount(result))
