"""The root command group of `tresen`: where a refusal becomes `error: ...` and an exit code."""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

from tresen.clitools import fail
from tresen.domain.errors import DomainError
from tresen.privacy import audit

DOMAIN_ERROR_EXIT = 2
"""The exit code of a command refused with a DomainError (like any other usage error)."""


class CliGroup(TyperGroup):
    """The root command group: the one place a DomainError becomes `error: ...` and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        """Run the chosen command; print a domain error's message instead of a traceback."""
        audit.VIA.set("cli")
        try:
            return super().invoke(ctx)
        except DomainError as exc:
            fail(exc.message, DOMAIN_ERROR_EXIT)
