"""What the simulated Bot API checks in a request: errors, ids, keyboards, commands, actions."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "CHAT_ACTIONS",
    "ApiError",
    "bad",
    "chat_id_of",
    "check_commands",
    "check_markup",
    "decoded",
    "int_param",
    "is_inline_keyboard",
    "truthy",
]

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# Each inline button carries exactly one of these (https://core.telegram.org/bots/api#inlinekeyboardbutton).
INLINE_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


class ApiError(Exception):
    """A Bot API error answer."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        """The error as Telegram sends it."""
        out: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            out["parameters"] = {"retry_after": self.retry_after}
        return out


def bad(description: str) -> ApiError:
    """A 400 answer."""
    return ApiError(400, f"Bad Request: {description}")


def decoded(value: Any) -> Any:
    """A structured parameter: form requests carry objects and arrays as JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def truthy(value: Any) -> bool:
    """A Boolean parameter (JSON true or form text "true")."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def chat_id_of(value: Any) -> int:
    """A chat_id as Telegram accepts it: an integer or a string of one."""
    if isinstance(value, bool):
        raise bad("chat_id is invalid")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,20}", value.strip()):
        return int(value)
    if value is None or value == "":
        raise bad("chat_id is empty")
    raise bad("chat not found")


def int_param(params: dict[str, Any], name: str) -> int | None:
    """An optional integer parameter (JSON number or form text)."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,20}", value.strip()):
        return int(value)
    raise bad(f'field "{name}" must be an Integer')


def _https(url: Any) -> bool:
    return isinstance(url, str) and url.startswith("https://") and len(url) > len("https://")


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad('can\'t find field "text"')
    if not button["text"].strip():
        raise bad("BUTTON_TEXT_INVALID")
    actions = [k for k in INLINE_ACTIONS if k in button]
    if len(actions) != 1:
        raise bad("text buttons are unallowed in the inline keyboard")
    action = actions[0]
    value = button[action]
    if action == "callback_data" and (
        not isinstance(value, str) or not 1 <= len(value.encode()) <= 64
    ):
        raise bad("BUTTON_DATA_INVALID")
    if action == "url" and not (
        isinstance(value, str) and value.startswith(("http://", "https://", "tg://"))
    ):
        raise bad("BUTTON_URL_INVALID")
    if action in ("web_app", "login_url"):
        url = value.get("url") if isinstance(value, dict) else None
        if not _https(url):
            raise bad(f"inline keyboard button {action} URL {url!r} is invalid: only HTTPS")
    if action in ("switch_inline_query", "switch_inline_query_current_chat") and not isinstance(
        value, str
    ):
        raise bad(f'field "{action}" must be a String')


def _check_reply_button(button: Any) -> None:
    if isinstance(button, str):
        text: Any = button
    elif isinstance(button, dict):
        text = button.get("text")
        web_app = button.get("web_app")
        if web_app is not None and not _https(
            web_app.get("url") if isinstance(web_app, dict) else None
        ):
            raise bad("keyboard button Web App URL is invalid: only HTTPS")
    else:
        raise bad("can't parse keyboard button")
    if not isinstance(text, str) or not text.strip():
        raise bad("keyboard button text is empty")


def _check_rows(markup: dict[str, Any], field: str, kind: str) -> list[list[Any]]:
    rows = markup.get(field)
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise bad(f'field "{field}" of the {kind} must be an Array')
    return rows


def check_markup(markup: Any) -> dict[str, Any] | None:
    """Check reply_markup like the Bot API does; return it decoded."""
    if markup is None or markup == "":
        return None
    markup = decoded(markup)
    if not isinstance(markup, dict):
        raise bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        for row in _check_rows(markup, "inline_keyboard", "InlineKeyboardMarkup"):
            for button in row:
                _check_inline_button(button)
    elif "keyboard" in markup:
        rows = _check_rows(markup, "keyboard", "ReplyKeyboardMarkup")
        if not any(rows):
            raise bad("keyboard must be non-empty")
        for row in rows:
            for button in row:
                _check_reply_button(button)
    elif "remove_keyboard" in markup:
        if markup["remove_keyboard"] is not True:
            raise bad('field "remove_keyboard" must be true')
    elif "force_reply" in markup:
        if markup["force_reply"] is not True:
            raise bad('field "force_reply" must be true')
    else:
        raise bad("can't parse reply keyboard markup JSON object")
    return markup


def is_inline_keyboard(markup: Any) -> bool:
    """Whether a (decoded) reply_markup is an inline keyboard: the only kind a Message echoes."""
    return isinstance(markup, dict) and "inline_keyboard" in markup


def check_commands(value: Any) -> list[dict[str, str]]:
    """Check setMyCommands' commands; return them as the API lists them."""
    commands = decoded(value)
    if not isinstance(commands, list):
        raise bad('field "commands" must be an Array')
    if len(commands) > 100:
        raise bad("too many commands")
    out: list[dict[str, str]] = []
    for item in commands:
        if not isinstance(item, dict):
            raise bad("can't parse BotCommand")
        command, description = item.get("command"), item.get("description")
        if not isinstance(command, str) or not _COMMAND_RE.match(command.lstrip("/")):
            raise bad("BOT_COMMAND_INVALID")
        if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
            raise bad("BOT_COMMAND_DESCRIPTION_INVALID")
        out.append({"command": command.lstrip("/"), "description": description})
    return out
