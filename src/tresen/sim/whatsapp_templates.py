"""Template management of the simulated WhatsApp Business Account (`/{waba}/message_templates`).

Submitted templates start PENDING and are reviewed after a short delay: APPROVED, or REJECTED
with reason INVALID_FORMAT when the body starts or ends with a variable or skips a number
(rules Meta applies too). Sending a template the account knows but has not approved fails with
132001, as the Cloud API does for a template that does not exist in that language.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NAME = re.compile(r"^[a-z0-9_]{1,512}$")
CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
TEMPLATE_LIMIT = 250
"""Templates a business account may hold before it is verified."""
_VARIABLE = re.compile(r"\{\{(\d+)\}\}")


class TemplateError(Exception):
    """A refused template request with the Graph API code and text."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass
class Template:
    """One template in one language."""

    id: str
    name: str
    language: str
    category: str
    body: str
    submitted_at: float
    status: str = "PENDING"
    rejected_reason: str | None = None
    parameter_format: str = "POSITIONAL"
    components: list[dict[str, Any]] | None = None
    """The components as submitted (header, footer, buttons, examples), when given."""

    def to_json(self) -> dict[str, Any]:
        """The template as the Graph API lists it."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "language": self.language,
            "category": self.category,
            "status": self.status,
            "parameter_format": self.parameter_format,
            "components": self.components or [{"type": "BODY", "text": self.body}],
        }
        if self.rejected_reason:
            out["rejected_reason"] = self.rejected_reason
        return out


def _review(body: str) -> str | None:
    """Why the body fails review, or None."""
    stripped = body.strip()
    numbers = [int(n) for n in _VARIABLE.findall(stripped)]
    if numbers and (stripped.startswith("{{") or stripped.endswith("}}")):
        return "INVALID_FORMAT"
    if sorted(set(numbers)) != list(range(1, len(set(numbers)) + 1)):
        return "INVALID_FORMAT"
    return None


@dataclass
class TemplateStore:
    """The account's templates, reviewed `review_seconds` after submission."""

    review_seconds: float = 0.2
    templates: dict[tuple[str, str], Template] = field(default_factory=dict)
    _next_id: int = 900000000000001

    def _settle(self) -> None:
        now = time.monotonic()
        for t in self.templates.values():
            if t.status == "PENDING" and now - t.submitted_at >= self.review_seconds:
                reason = _review(t.body)
                t.status, t.rejected_reason = ("REJECTED", reason) if reason else ("APPROVED", None)

    def submit(self, payload: Any) -> dict[str, Any]:
        """Handle POST message_templates; the answer body or a TemplateError."""
        if not isinstance(payload, dict):
            raise TemplateError(100, "The body must be a JSON object.")
        name, language, category = (payload.get(k) for k in ("name", "language", "category"))
        if not isinstance(name, str) or not NAME.match(name):
            raise TemplateError(100, "Param name must be lowercase letters, digits and '_'.")
        if not isinstance(language, str) or not 2 <= len(language) <= 20:
            raise TemplateError(100, "Param language must be a language code such as de or en_US.")
        if category not in CATEGORIES:
            raise TemplateError(100, f"Param category must be one of {', '.join(CATEGORIES)}.")
        components = payload.get("components")
        body = next(
            (
                c.get("text")
                for c in components or []
                if isinstance(c, dict) and c.get("type") == "BODY"
            ),
            None,
        )
        if not isinstance(body, str) or not body.strip() or len(body) > 1024:
            raise TemplateError(
                100, "A BODY component with 1 to 1024 characters of text is required."
            )
        if (name, language) in self.templates:
            raise TemplateError(
                2388023, f"Content in this language already exists for the template {name!r}."
            )
        parameter_format = payload.get("parameter_format") or "POSITIONAL"
        if parameter_format not in ("POSITIONAL", "NAMED"):
            raise TemplateError(100, "Param parameter_format must be POSITIONAL or NAMED.")
        template = Template(
            str(self._next_id),
            name,
            language,
            category,
            body,
            time.monotonic(),
            parameter_format=parameter_format,
            components=[c for c in components or [] if isinstance(c, dict)],
        )
        self._next_id += 1
        self.templates[(name, language)] = template
        return {"id": template.id, "status": template.status, "category": category}

    def listing(self, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Handle GET message_templates (one page holds them all).

        Filters name, status, category and language (comma-separated) narrow the list;
        `summary=total_count,...` adds the counts Meta reports.
        """
        self._settle()
        query = query or {}
        shown = list(self.templates.values())
        for key in ("status", "category", "language"):
            if query.get(key):
                wanted = {v.strip().upper() for v in query[key].split(",")}
                shown = [t for t in shown if str(getattr(t, key)).upper() in wanted]
        if query.get("name"):
            shown = [t for t in shown if query["name"].lower() in t.name]
        out: dict[str, Any] = {"data": [t.to_json() for t in shown], "paging": {}}
        if query.get("summary"):
            counts = {
                "total_count": len(shown),
                "message_template_count": len(self.templates),
                "message_template_limit": TEMPLATE_LIMIT,
                "are_translations_complete": True,
            }
            asked = {f.strip() for f in query["summary"].split(",")}
            out["summary"] = {k: v for k, v in counts.items() if k in asked}
        return out

    def check_send(self, name: str, language: str) -> None:
        """Refuse sending a template the account knows but has not approved (132001)."""
        self._settle()
        known = self.templates.get((name, language))
        if known is not None and known.status != "APPROVED":
            raise TemplateError(
                132001, f"Template name does not exist in the translation ({known.status})."
            )
