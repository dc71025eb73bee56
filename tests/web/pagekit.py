"""Helpers for page tests: people of a workspace, signing in, CSRF tokens."""

from __future__ import annotations

import re

import httpx

from tresen.inbox import accounts
from tresen.runtime import Runtime

PASSWORD = "richtig-langes-passwort"
HTML = {"accept": "text/html,application/xhtml+xml"}


def csrf(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, "the form carries a CSRF token"
    return found.group(1)


async def person(
    runtime: Runtime, workspace_id: str, email: str, role: str, language: str = "de"
) -> str:
    """A user of the workspace with the test password; returns the id."""
    async with runtime.sessions() as session, session.begin():
        user = await accounts.add_user(
            session, workspace_id, email, role, PASSWORD, language=language
        )
    return user.id


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, code: str = ""
) -> httpx.Response:
    """Sign in through the login form."""
    page = await client.get("/inbox/login")
    return await client.post(
        "/inbox/login",
        data={"email": email, "password": password, "code": code, "_csrf_token": csrf(page.text)},
    )


def nav_links(html: str) -> list[str]:
    """The hrefs of the header's main navigation."""
    found = re.search(r'<nav class="main-nav".*?</nav>', html, re.S)
    return re.findall(r'href="([^"]+)"', found.group(0)) if found else []
