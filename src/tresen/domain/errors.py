"""The one base of domain errors: a stable code, the values the message names, an HTTP status."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import ClassVar

Param = str | int | float


def _english(template: str) -> str:
    return template


class DomainError(ValueError):
    """A request the house refuses for a reason the caller can act on.

    `code` is stable and machine-readable (the API's error code); `params` are the values the
    message names; the message is the English `template` filled from `params`, so a caller can
    render the same error in another language from code, template and params alone. `status`
    is the HTTP status that fits; the web layer maps every DomainError in one handler, the CLI
    in one place (`tresen.cligroup.CliGroup`).

        DomainError("label_exists", "a label {name!r} exists already", 409, params={"name": "VIP"})
    """

    default_status: ClassVar[int] = 422

    def __init__(
        self,
        code: str,
        template: str = "",
        status: int | None = None,
        *,
        params: Mapping[str, Param] | None = None,
    ) -> None:
        self.code = code
        self.template = template or code
        self.params: dict[str, Param] = dict(params or {})
        self.status = status if status is not None else self.default_status
        self.message = self.text()
        super().__init__(self.message)

    @property
    def status_code(self) -> int:
        """The HTTP status (the name web code has always used)."""
        return self.status

    def text(self, gettext: Callable[[str], str] = _english) -> str:
        """The message in the language `gettext` translates the template to (English by default)."""
        if not self.params:
            return gettext(self.template)
        try:
            return gettext(self.template).format_map(self.params)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError):
            return self.template.format_map(self.params)


def as_record(error: DomainError) -> str:
    """The error as stored text (JSON of code, template and params), to be rendered later."""
    return json.dumps(
        {"code": error.code, "template": error.template, "params": error.params},
        ensure_ascii=False,
    )


def from_record(text: str | None) -> DomainError | None:
    """The error a stored record holds, or None for any other text (such as older plain reasons)."""
    if not text or not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("template"), str):
        return None
    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    return DomainError(str(data.get("code", "")), data["template"], params=params)
