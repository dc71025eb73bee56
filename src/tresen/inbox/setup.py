"""First run: the owner's account and the business basics, before anything else exists."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.manage import default_workspace
from tresen.db.tables import ChannelRow, User, Workspace
from tresen.domain import profile as profiles
from tresen.inbox import accounts
from tresen.privacy import audit

SETUP_DONE = "setup_done"
"""Key in ``Workspace.settings``: the first-run steps were gone through (or skipped)."""


class SetupClosed(accounts.AccountError):
    """The install has people already: the owner signs in instead."""


async def needs_owner(session: AsyncSession) -> bool:
    """True on an empty install: nobody can sign in yet."""
    return not await session.scalar(select(func.count()).select_from(User))


async def _serialize_first_run(session: AsyncSession) -> None:
    """Hold a lock until this transaction ends, so two first-run submissions (or a `tresen user
    add` at the same time) cannot both see an empty install. SQLite's immediate write
    transactions serialize already; PostgreSQL's read committed would let both through."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"))


async def create_owner(
    session: AsyncSession,
    *,
    business: str,
    email: str,
    display_name: str,
    password: str,
    language: str,
) -> User:
    """The first admin and the workspace named after the business; refused once anyone exists."""
    await _serialize_first_run(session)
    if not await needs_owner(session):
        raise SetupClosed("set_up_already", "tresen is set up already; sign in instead", 409)
    name = business.strip()
    if not name or len(name) > 100:
        raise accounts.AccountError("business_name", "the business name has 1 to 100 characters")
    workspace = await default_workspace(session, name)
    owner = await accounts.add_user(
        session,
        workspace.id,
        email,
        "admin",
        password,
        display_name=display_name.strip() or None,
        language=language,
    )
    settings = dict(workspace.settings or {})
    settings["language"] = language
    settings["profile"] = {**(settings.get("profile") or {}), "name": name}
    await session.execute(
        update(Workspace).where(Workspace.id == workspace.id).values(name=name, settings=settings)
    )
    await audit.record(
        session,
        workspace.id,
        "setup.owner_created",
        actor_id=owner.id,
        subject_type="user",
        subject_id=owner.id,
    )
    return owner


async def save_basics(
    session: AsyncSession,
    workspace_id: str,
    form: dict[str, str],
    *,
    actor_id: str,
) -> profiles.Profile:
    """Name, time zone, language and the weekly hours; a ProfileError names a bad field."""
    workspace = await session.get_one(Workspace, workspace_id, with_for_update=True)
    current = profiles.from_settings(workspace.settings, workspace.name)
    language = form.get("language", "de")
    if language not in profiles.LANGUAGES:
        raise profiles.ProfileError("unknown_language", "the language is de or en")
    hours = {}
    for day in profiles.WEEKDAYS:
        try:
            hours[day] = profiles.parse_intervals(form.get(f"hours_{day}", ""))
        except profiles.ProfileError as exc:
            raise profiles.ProfileError(
                exc.code, "{day}: " + exc.template, params={**exc.params, "day": day}
            ) from exc
    name = form.get("name", "").strip()
    if not name or len(name) > 100:
        raise profiles.ProfileError("business_name", "the business name has 1 to 100 characters")
    updated = replace(
        current,
        name=name,
        timezone=profiles.check_timezone(form.get("timezone", "") or "Europe/Berlin"),
        hours=hours,
        privacy_url=profiles.check_privacy_url(form.get("privacy_url", "")),
    )
    settings: dict[str, Any] = dict(workspace.settings or {})
    settings["profile"] = {**(settings.get("profile") or {}), **profiles.to_json(updated)}
    settings["language"] = language
    await session.execute(
        update(Workspace)
        .where(Workspace.id == workspace_id)
        .values(name=name, time_zone=updated.timezone, settings=settings)
    )
    await audit.record(
        session,
        workspace_id,
        "settings.profile",
        actor_id=actor_id,
        subject_type="workspace",
        subject_id=workspace_id,
    )
    return updated


async def finish(session: AsyncSession, workspace_id: str) -> None:
    """Mark the first-run steps as done; the inbox stops pointing to them."""
    workspace = await session.get_one(Workspace, workspace_id, with_for_update=True)
    settings = {**(workspace.settings or {}), SETUP_DONE: True}
    await session.execute(
        update(Workspace).where(Workspace.id == workspace_id).values(settings=settings)
    )


async def unfinished(session: AsyncSession, workspace_id: str) -> bool:
    """True while the setup was neither finished nor is any channel connected."""
    workspace = await session.get(Workspace, workspace_id)
    if workspace is None or (workspace.settings or {}).get(SETUP_DONE):
        return False
    channels = await session.scalar(
        select(func.count()).select_from(ChannelRow).where(ChannelRow.workspace_id == workspace_id)
    )
    return not channels
