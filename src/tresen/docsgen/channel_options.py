"""The options of `tresen channel add KIND`, per kind, from each channel's config type."""

from __future__ import annotations

import ast
import inspect
import textwrap
from itertools import pairwise
from typing import Any

import msgspec

from tresen.channels.registry import registry

FIELD_MEANINGS = {
    "phone_number_id": "The number's id in Meta's WhatsApp API setup (not the number itself).",
    "app_secret": "The Meta app's secret (App settings → Basic); signs the webhooks.",
    "verify_token": "Any random string; enter the same in Meta's webhook settings.",
    "access_token": "A permanent system-user token with whatsapp_business_messaging.",
    "api_base": "The provider API's base URL (a simulator's URL for tests and the demo).",
    "api_version": "The Graph API version.",
    "messages_per_second": "Send rate limit of this account.",
    "page_id": "The Facebook Page's id.",
    "page_access_token": "The Page access token with pages_messaging.",
    "page_username": "The Page's username; m.me links use the page id without it.",
    "bot_token": "The bot's token from BotFather.",
    "secret_token": "Any random string; Telegram sends it with every webhook.",
    "account_sid": "The Twilio account SID (AC…).",
    "auth_token": "The Twilio auth token; signs the webhooks.",
    "from_number": "The sending number (+49…), or use a messaging service.",
    "messaging_service_sid": "A Twilio messaging service (MG…) instead of one number.",
    "status_callback_url": "Where Twilio reports delivery states (default: this channel's webhook).",
    "address": "The e-mail address customers write to.",
    "display_name": "The sender name shown with the address.",
    "smtp_host": "The outgoing mail server.",
    "smtp_port": "Its port.",
    "smtp_starttls": "Use STARTTLS.",
    "smtp_username": "SMTP login.",
    "smtp_password": "SMTP password.",
    "imap_host": "The incoming mail server (polled by the worker).",
    "imap_port": "Its port.",
    "imap_tls": "Use TLS.",
    "imap_username": "IMAP login.",
    "imap_password": "IMAP password.",
    "imap_folder": "The folder to read.",
    "allowed_origins": "Websites allowed to embed the widget.",
    "title": "The widget's title.",
    "privacy_notice": "The privacy notice shown before the first message.",
    "privacy_link": "Link to the privacy policy.",
    "max_upload_bytes": "Largest file a visitor may upload.",
    "allowed_upload_types": "File types a visitor may upload.",
    "opening_hours_note": "Shown when nobody is there.",
    "jid": "The account's address (shop@example.org).",
    "password": "The account's password.",
    "host": "The server to connect to (default: from the address).",
    "port": "The server's port.",
}
"""What a config field means where its class has no docstring for it (reference only)."""


def field_docs(config_type: type) -> dict[str, str]:
    """The docstrings below the fields of a config class and its bases, by field name."""
    found: dict[str, str] = {}
    for cls in reversed(config_type.__mro__):
        if cls.__module__.startswith("tresen."):
            found.update(_class_field_docs(cls))
    return found


def _class_field_docs(cls: type) -> dict[str, str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    found: dict[str, str] = {}
    for this, after in pairwise(body):
        if (
            isinstance(this, ast.AnnAssign)
            and isinstance(this.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            found[this.target.id] = " ".join(after.value.value.split())
    return found


def _default(field: Any) -> str:
    if field.required:
        return "required"
    value = field.default
    return "–" if value in ("", None) else f"`{value}`"


def markdown() -> str:
    """One table per channel kind: option, default, meaning."""
    lines: list[str] = []
    for kind, factory in registry().items():
        docs = field_docs(factory.config_type)
        info = msgspec.inspect.type_info(factory.config_type)
        lines += [f"#### `tresen channel add {kind}`", ""]
        if factory.poller:
            lines += [
                f"Inbound through the {factory.poller} poller of the worker (no webhook).",
                "",
            ]
        lines += ["| option | default | meaning |", "|---|---|---|"]
        for field in info.fields:  # type: ignore[attr-defined]
            meaning = docs.get(field.name) or FIELD_MEANINGS.get(field.name, "")
            meaning = meaning.replace("|", "\\|")
            lines.append(f"| `--{field.name.replace('_', '-')}` | {_default(field)} | {meaning} |")
        lines.append("")
    return "\n".join(lines).strip()
