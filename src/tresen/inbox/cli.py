"""`tresen team ...` and `tresen route ...`: teams, members and channel → team routing rules."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from sqlalchemy import select

from tresen.clitools import cli_settings, fail, with_session

team_app = typer.Typer(no_args_is_help=True, help="Teams of agents.")
route_app = typer.Typer(no_args_is_help=True, help="Which team gets a channel's conversations.")


class _NotFound(Exception):
    """A name or e-mail on the command line matches nothing."""


async def _team(session: Any, workspace_id: str, name_or_id: str) -> Any:
    from tresen.db.tables import Team

    team = await session.scalar(
        select(Team).where(
            Team.workspace_id == workspace_id, (Team.id == name_or_id) | (Team.name == name_or_id)
        )
    )
    if team is None:
        raise _NotFound(f"no team {name_or_id!r}")
    return team


async def _user(session: Any, email: str) -> Any:
    from tresen.db.tables import User
    from tresen.inbox.accounts import normalise_email

    user = await session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise _NotFound(f"no user with the e-mail {email}")
    return user


def _run(work: Any) -> Any:
    try:
        return asyncio.run(with_session(cli_settings(), work))
    except (_NotFound, ValueError) as exc:
        fail(str(exc))


@team_app.command("add")
def team_add(name: str) -> None:
    """Create a team; prints its id."""
    from tresen.channels.manage import default_workspace
    from tresen.inbox import routing

    async def work(session: Any) -> str:
        ws = await default_workspace(session)
        return (await routing.add_team(session, ws.id, name)).id

    typer.echo(_run(work))


@team_app.command("member")
def team_member(team: str, email: str) -> None:
    """Put a person into a team (by team name or id and the person's e-mail)."""
    from tresen.channels.manage import default_workspace
    from tresen.inbox import routing

    async def work(session: Any) -> str:
        ws = await default_workspace(session)
        found = await _team(session, ws.id, team)
        await routing.add_member(session, found.id, (await _user(session, email)).id)
        return str(found.name)

    typer.echo(f"{email} is in team {_run(work)}")


@team_app.command("list")
def team_list() -> None:
    """Print every team with its members."""
    from tresen.db.tables import Team, TeamMember, User

    async def work(session: Any) -> list[str]:
        rows = await session.execute(
            select(Team.id, Team.name, User.email)
            .outerjoin(TeamMember, TeamMember.team_id == Team.id)
            .outerjoin(User, User.id == TeamMember.user_id)
            .order_by(Team.name, User.email)
        )
        teams: dict[tuple[str, str], list[str]] = {}
        for tid, name, email in rows.all():
            teams.setdefault((tid, name), []).extend([email] if email else [])
        return [f"{tid}\t{name}\t{', '.join(emails)}" for (tid, name), emails in teams.items()]

    for line in _run(work):
        typer.echo(line)


@route_app.command("set")
def route_set(
    channel_id: str,
    team: str,
    mode: Annotated[str, typer.Option(help="manual, round_robin or least_busy.")] = "round_robin",
) -> None:
    """Send a channel's conversations to a team, assigned by mode."""
    from tresen.channels.manage import default_workspace
    from tresen.inbox import routing

    if mode not in {m.value for m in routing.Mode}:
        fail(f"unknown mode {mode!r}: use manual, round_robin or least_busy")

    async def work(session: Any) -> str:
        ws = await default_workspace(session)
        found = await _team(session, ws.id, team)
        from tresen.db.tables import ChannelRow

        channel = await session.get(ChannelRow, channel_id)
        if channel is None or channel.workspace_id != ws.id:
            raise _NotFound(f"no channel {channel_id!r} (see `tresen channel list`)")
        await routing.set_rule(session, ws.id, channel_id, found.id, mode)
        return f"channel {channel.name} ({channel_id}) goes to team {found.name}, mode {mode}"

    typer.echo(_run(work))


@route_app.command("remove")
def route_remove(channel_id: str) -> None:
    """Stop routing a channel (its conversations stay where they are)."""
    from tresen.inbox import routing

    async def work(session: Any) -> None:
        await routing.remove_rule(session, channel_id)

    _run(work)
    typer.echo(f"channel {channel_id} is not routed (its conversations stay where they are)")


@route_app.command("list")
def route_list() -> None:
    """Print every rule: channel id, channel name, team, mode."""
    from tresen.db.tables import ChannelRow, RoutingRule, Team

    async def work(session: Any) -> list[str]:
        rows = await session.execute(
            select(ChannelRow.id, ChannelRow.name, Team.name, RoutingRule.mode)
            .join(RoutingRule, RoutingRule.channel_id == ChannelRow.id)
            .join(Team, Team.id == RoutingRule.team_id)
            .order_by(ChannelRow.name)
        )
        return ["\t".join(row) for row in rows.all()]

    for line in _run(work):
        typer.echo(line)


def user_limit(
    email: str,
    max_open: Annotated[
        str, typer.Argument(help="Most open conversations routing gives them, or 'none'.")
    ],
) -> None:
    """Set a person's limit of open conversations for routing."""
    from tresen.inbox import routing

    limit: int | None
    if max_open.lower() == "none":
        limit = None
    elif max_open.isdigit():
        limit = int(max_open)
    else:
        fail(f"the limit must be a whole number or 'none', not {max_open!r}")

    async def work(session: Any) -> None:
        await routing.set_limit(session, (await _user(session, email)).id, limit)

    _run(work)
    if limit is None:
        typer.echo(f"{email}: no limit of open conversations")
    else:
        typer.echo(f"{email}: at most {limit} open conversations from routing")
