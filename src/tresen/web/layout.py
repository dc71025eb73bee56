"""The one layout's navigation: every page a role may see, in one list."""

from __future__ import annotations

from dataclasses import dataclass

from tresen.inbox.permissions import Action, Actor, may


@dataclass(frozen=True)
class NavItem:
    """A link in the header; `label` is the English catalog id."""

    href: str
    label: str
    current: bool = False


PAGES: tuple[tuple[str, str, Action | None], ...] = (
    ("/inbox", "Inbox", None),
    ("/inbox/labels", "Labels", Action.MANAGE_LABELS),
    ("/inbox/admin/canned", "Canned replies", None),
    ("/inbox/admin/campaigns", "Broadcasts", Action.VIEW_REPORTS),
    ("/inbox/admin/topics", "Topics", Action.MANAGE_SETTINGS),
    ("/inbox/admin/bot", "Bot", Action.MANAGE_SETTINGS),
    ("/inbox/admin/channels", "Channels", Action.MANAGE_SETTINGS),
    ("/inbox/admin/users", "Team", Action.MANAGE_USERS),
    ("/inbox/admin/profile", "Business profile", Action.MANAGE_SETTINGS),
    ("/inbox/admin/tokens", "API tokens", Action.MANAGE_SETTINGS),
    ("/inbox/admin/notifications", "Status webhook", Action.MANAGE_SETTINGS),
    ("/inbox/admin/privacy", "Data protection", Action.MANAGE_PRIVACY),
    ("/inbox/admin/audit", "Audit log", Action.MANAGE_SETTINGS),
    ("/inbox/account", "My account", None),
)
"""(path, label, the permission it needs); a page is current for its path and below it."""


def nav_for(actor: Actor, path: str) -> list[NavItem]:
    """The header links this person may follow, the page they are on marked."""
    allowed = [(href, label) for href, label, needs in PAGES if needs is None or may(actor, needs)]
    best = max(
        (href for href, _ in allowed if path == href or path.startswith(href + "/")),
        key=len,
        default=None,
    )
    if best == "/inbox" and path.startswith("/inbox/") and not path.startswith("/inbox/c/"):
        best = None if path != "/inbox/search" else "/inbox"
    return [NavItem(href, label, href == best) for href, label in allowed]
