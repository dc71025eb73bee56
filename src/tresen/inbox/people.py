"""People of a workspace: invitations, roles, deactivation, removal, own password and 2FA."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db import outbox
from tresen.db.tables import Conversation, Invitation, RoutingRule, Team, TeamMember, User
from tresen.db.types import utcnow
from tresen.domain.events import ConversationAssigned
from tresen.domain.ids import new_id
from tresen.inbox import accounts
from tresen.inbox.accounts import AccountError, Role

INVITATION_LIFETIME = timedelta(days=7)
RECOVERY_CODES = 10


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _other_admins(session: AsyncSession, user: User) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(User)
            .where(
                User.workspace_id == user.workspace_id,
                User.role == Role.ADMIN.value,
                User.disabled.is_(False),
                User.id != user.id,
            )
        )
        or 0
    )


async def invite(
    session: AsyncSession,
    workspace_id: str,
    email: str,
    role: str,
    *,
    created_by: str,
    now: datetime | None = None,
) -> tuple[Invitation, str]:
    """A single-use invitation; returns it and the token for the link (shown only now)."""
    address = accounts.normalise_email(email)
    try:
        Role(role)
    except ValueError as exc:
        raise AccountError(
            "unknown_role",
            "role must be admin, supervisor or agent, not {role!r}",
            params={"role": role},
        ) from exc
    if await session.scalar(select(func.count()).select_from(User).where(User.email == address)):
        raise AccountError(
            "user_exists",
            "a user with the e-mail {email} exists already",
            409,
            params={"email": address},
        )
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        id=new_id(),
        workspace_id=workspace_id,
        email=address,
        role=role,
        token_hash=_hash(token),
        expires_at=now + INVITATION_LIFETIME,
        created_by=created_by,
        created_at=now,
    )
    session.add(invitation)
    await session.flush()
    return invitation, token


async def open_invitation(
    session: AsyncSession, token: str, now: datetime | None = None
) -> Invitation | None:
    """The unused, unexpired invitation of a link token, else None."""
    found = await session.scalar(
        select(Invitation).where(Invitation.token_hash == _hash(token[:200]))
    )
    if found is None or found.used_at is not None or found.expires_at <= (now or utcnow()):
        return None
    return found


async def accept(
    session: AsyncSession,
    token: str,
    *,
    display_name: str,
    password: str,
    language: str,
    now: datetime | None = None,
) -> User:
    """Join with an invitation: the account is created and the link is used up."""
    now = now or utcnow()
    invitation = await open_invitation(session, token, now)
    if invitation is None:
        raise AccountError(
            "invitation_spent", "this invitation link is used up or has expired; ask for a new one"
        )
    claimed = await session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise AccountError(
            "invitation_spent", "this invitation link is used up or has expired; ask for a new one"
        )
    return await accounts.add_user(
        session,
        invitation.workspace_id,
        invitation.email,
        invitation.role,
        password,
        display_name=display_name or None,
        language=language,
    )


async def pending_invitations(
    session: AsyncSession, workspace_id: str, now: datetime | None = None
) -> list[Invitation]:
    """Invitations not used and not expired, newest first."""
    return list(
        await session.scalars(
            select(Invitation)
            .where(
                Invitation.workspace_id == workspace_id,
                Invitation.used_at.is_(None),
                Invitation.expires_at > (now or utcnow()),
            )
            .order_by(Invitation.created_at.desc())
        )
    )


async def withdraw(session: AsyncSession, workspace_id: str, invitation_id: str) -> None:
    """Make an invitation link useless."""
    await session.execute(
        update(Invitation)
        .where(Invitation.id == invitation_id, Invitation.workspace_id == workspace_id)
        .values(expires_at=utcnow())
    )


async def set_role(session: AsyncSession, target: User, role: str) -> None:
    """Give a person another role; the last active admin keeps theirs."""
    chosen = Role(role)
    if (
        target.role == Role.ADMIN.value
        and chosen != Role.ADMIN
        and not await _other_admins(session, target)
    ):
        raise AccountError("last_admin", "the last admin cannot lose the admin role", 409)
    target.role = chosen.value
    await session.flush()


async def deactivate(session: AsyncSession, target: User, *, actor_id: str) -> None:
    """Stop a person from signing in; their sessions end at once, their history stays."""
    if target.id == actor_id:
        raise AccountError("deactivate_self", "you cannot deactivate yourself", 409)
    if target.role == Role.ADMIN.value and not await _other_admins(session, target):
        raise AccountError("last_admin", "the last admin cannot be deactivated", 409)
    await accounts.disable_user(session, target.id)


async def reactivate(session: AsyncSession, target: User) -> None:
    """Let a deactivated person sign in again."""
    await accounts.enable_user(session, target.id)


async def remove(session: AsyncSession, target: User, *, actor_id: str) -> None:
    """Remove a person: sessions end, open conversations return to the queue, notes stay."""
    if target.id == actor_id:
        raise AccountError("remove_self", "you cannot remove yourself", 409)
    if target.role == Role.ADMIN.value and not await _other_admins(session, target):
        raise AccountError("last_admin_remove", "the last admin cannot be removed", 409)
    unassigned = await session.execute(
        update(Conversation)
        .where(Conversation.assignee_id == target.id, Conversation.status != "resolved")
        .values(assignee_id=None)
        .returning(Conversation.workspace_id, Conversation.id)
    )
    outbox.record(
        session, *(ConversationAssigned(ws, cid, None, "admin") for ws, cid in unassigned.all())
    )
    await accounts.remove_user(session, target.id)


async def change_password(session: AsyncSession, user: User, current: str, new: str) -> None:
    """Change one's own password after proving the current one; other sessions end."""
    if not accounts.password_matches(user, current):
        raise AccountError("wrong_password", "the current password is wrong")
    await accounts.set_password(session, user.id, new)


def new_totp_secret() -> str:
    """A fresh secret for an authenticator app (stored only once a code proves it works)."""
    return pyotp.random_base32()


def totp_uri(secret: str, email: str, issuer: str) -> str:
    """The otpauth:// address the QR code carries."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def sign_secret(key: str, user_id: str, secret: str) -> str:
    """A signature binding a pending secret to a person (so a form cannot bring its own)."""
    return hmac.new(key.encode(), f"totp:{user_id}:{secret}".encode(), "sha256").hexdigest()


async def enable_totp(
    session: AsyncSession, user: User, secret: str, code: str, *, now: datetime | None = None
) -> list[str]:
    """Turn two-factor sign-in on once a code proves the app works; returns recovery codes."""
    cleaned = code.replace(" ", "")
    if not (cleaned.isdigit() and pyotp.TOTP(secret).verify(cleaned, for_time=now, valid_window=1)):
        raise AccountError(
            "wrong_code", "the code does not match; check the time on your phone and try again"
        )
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]
    user.totp_secret = secret
    user.recovery_codes = {"hashes": [accounts.recovery_hash(c) for c in codes]}
    await session.flush()
    return codes


async def teams_overview(
    session: AsyncSession, workspace_id: str
) -> tuple[list[Team], dict[str, list[str]], list[RoutingRule]]:
    """The workspace's teams, who is in each (user ids), and the routing rules."""
    teams = list(
        await session.scalars(
            select(Team).where(Team.workspace_id == workspace_id).order_by(Team.name)
        )
    )
    members: dict[str, list[str]] = {t.id: [] for t in teams}
    for team_id, user_id in (
        await session.execute(
            select(TeamMember.team_id, TeamMember.user_id).where(
                TeamMember.team_id.in_(list(members) or [""])
            )
        )
    ).all():
        members[team_id].append(user_id)
    rules = list(
        await session.scalars(select(RoutingRule).where(RoutingRule.workspace_id == workspace_id))
    )
    return teams, members, rules


async def leave_team(session: AsyncSession, workspace_id: str, team_id: str, user_id: str) -> None:
    """Take a person out of a team of this workspace."""
    team = await session.get(Team, team_id)
    if team is None or team.workspace_id != workspace_id:
        raise AccountError("no_such_team", "no such team in this workspace", 404)
    await session.execute(
        TeamMember.__table__.delete().where(
            TeamMember.team_id == team_id, TeamMember.user_id == user_id
        )
    )
