"""The bot's tone per language: name, du or Sie, emoji, greeting, varied fallback replies."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tresen.bot.texts import DEFAULT_TEXTS, address_forms

__all__ = ["DEFAULT_TEXTS", "Persona", "address_forms", "strip_emoji"]

_EMOJI = re.compile(
    "[\U0001f300-\U0001faff\U00002600-\U000027bf\U0001f000-\U0001f2ff\u2b50\u2b06\u2194-\u21aa\ufe0f\u200d]+"
)


def strip_emoji(text: str) -> str:
    """Text without emoji (and the blank they leave)."""
    return re.sub(r"[ \t]{2,}", " ", _EMOJI.sub("", text)).strip()


def _stable_index(key: str, n: int) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big") % n


@dataclass(frozen=True)
class Persona:
    """How the bot speaks; `texts` overrides any default text per language, key and form."""

    name: str = "Tresi"
    business: str = ""
    form: str = "sie"  # "du" or "sie"
    emoji: bool = True
    default_language: str = "de"
    texts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.form not in {"du", "sie"}:
            raise ValueError(f"form must be 'du' or 'sie', not {self.form!r}")

    def language(self, language: str | None) -> str:
        """The language the bot has texts in: `language`, else the default one."""
        if language in DEFAULT_TEXTS:
            return str(language)
        return self.default_language if self.default_language in DEFAULT_TEXTS else "de"

    def _form_of(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return value.get(self.form)
        return value

    def _variants(self, key: str, language: str | None) -> Sequence[str]:
        lang = self.language(language)
        value = self._form_of(self.texts.get(lang, {}).get(key))
        if not value:  # no override in this form: the default text
            value = self._form_of(DEFAULT_TEXTS[lang][key])
        return [value] if isinstance(value, str) else list(value)

    def pick(self, texts: Mapping[str, Any], language: str | None) -> str:
        """A text given per language, and per form where it differs (a flow's question)."""
        lang = self.language(language)
        value = texts.get(lang)
        if value is None:
            value = next(iter(texts.values()), "")
        if isinstance(value, Mapping):
            value = value.get(self.form) or next(iter(value.values()), "")
        return str(value)

    def fill(self, text: str, **values: Any) -> str:
        """`text` with its values in braces filled in, emoji removed if off."""
        try:
            out = text.format_map(
                _Defaults(name=self.name, business=self.business or self.name, **values)
            )
        except (ValueError, IndexError, AttributeError, TypeError):
            out = text  # an edited text with odd braces is said as it stands
        return out if self.emoji else strip_emoji(out)

    def say(self, key: str, language: str | None = None, variant: int = 0, **values: Any) -> str:
        """The text `key` in `language`, in this persona's form, with emoji removed if off."""
        options = self._variants(key, language)
        return self.fill(options[variant % len(options)], **values)

    def greeting(self, language: str | None = None) -> str:
        """The opening message."""
        return self.say("greeting", language)

    def fallback(self, language: str | None = None, turn: int = 0, conversation: str = "") -> str:
        """A "didn't understand" reply; consecutive turns of a conversation get different ones."""
        n = len(self._variants("fallback", language))
        return self.say("fallback", language, (_stable_index(conversation, n) + turn) % n)


class _Defaults(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
