"""Column types shared by the tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Text, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

from tresen.db import crypto

JsonType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; tresen stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class EncryptedText(TypeDecorator[str]):
    """Text encrypted at rest when a keyring is in use (plaintext rows still read fine)."""

    impl = Text
    cache_ok = True

    def __init__(self, aad: str) -> None:
        super().__init__()
        self.aad = aad.encode()

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        keyring = crypto.active()
        if value is None:
            return None
        if keyring is not None and keyring.encrypts:
            return keyring.encrypt(value.encode(), self.aad)
        if value.startswith((crypto.PREFIX, crypto.RAW)):
            return crypto.RAW + value  # a text that only looks like a ciphertext
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        text = str(value)
        if text.startswith(crypto.RAW):
            return text[len(crypto.RAW) :]
        if not text.startswith(crypto.PREFIX):
            return text
        keyring = crypto.active()
        if keyring is None:
            raise crypto.DecryptionError("encrypted value but no TRESEN_ENCRYPTION_KEYS configured")
        return keyring.decrypt(text, self.aad).decode()


class EncryptedJson(TypeDecorator[Any]):
    """A JSON document stored as {"_enc": token} when a keyring is in use."""

    impl = JSON
    cache_ok = True

    def __init__(self, aad: str) -> None:
        super().__init__()
        self.aad = aad.encode()

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        keyring = crypto.active()
        if value is None:
            return None
        if keyring is not None and keyring.encrypts:
            sealed = keyring.encrypt(json.dumps(value, ensure_ascii=False).encode(), self.aad)
            return {ENC_KEY: sealed}
        if sealed_json(value) or _raw(value):
            return {RAW_KEY: value}  # a document that only looks like a sealed one
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if _raw(value):
            return value[RAW_KEY]
        if not sealed_json(value):
            return value
        keyring = crypto.active()
        if keyring is None:
            raise crypto.DecryptionError("encrypted value but no TRESEN_ENCRYPTION_KEYS configured")
        return json.loads(keyring.decrypt(value[ENC_KEY], self.aad))


ENC_KEY, RAW_KEY = "_enc", "_raw"


def sealed_json(value: Any) -> bool:
    """Whether a stored JSON document is an encrypted one."""
    return (
        isinstance(value, dict)
        and len(value) == 1
        and isinstance(value.get(ENC_KEY), str)
        and value[ENC_KEY].startswith(crypto.PREFIX)
    )


def _raw(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and RAW_KEY in value


SECRET_FIELDS = frozenset(
    {
        "access_token",
        "api_key",
        "app_secret",
        "auth_token",
        "bot_token",
        "imap_password",
        "page_access_token",
        "password",
        "secret",
        "secret_token",
        "smtp_password",
        "verify_token",
    }
)
"""Keys whose string values are secrets, at any depth of a channel config or workspace settings."""


class SecretFieldsJson(TypeDecorator[Any]):
    """JSON whose secret fields (SECRET_FIELDS) are encrypted at rest when a keyring is in use.

    The rest of the document stays plain, so it can still be read and queried.
    """

    impl = JSON
    cache_ok = True

    def __init__(self, aad: str) -> None:
        super().__init__()
        self.aad = aad

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return _walk(value, self.aad, _seal)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return _walk(value, self.aad, _open)

    def key_ids(self, value: Any) -> set[str | None]:
        """The key ids the secret fields of a stored document are under (None: plaintext)."""
        found: set[str | None] = set()

        def note(text: str, aad: str) -> str:
            found.add(crypto.key_id_of(text))
            return text

        _walk(value, self.aad, note)
        return found


def _walk(value: Any, aad: str, change: Any, path: str = "") -> Any:
    """A copy of value with change(text, aad) applied to every secret field's string."""
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        here = f"{path}.{key}" if path else str(key)
        if key in SECRET_FIELDS and isinstance(item, str):
            out[key] = change(item, f"{aad}:{here}")
        else:
            out[key] = _walk(item, aad, change, here)
    return out


def _seal(text: str, aad: str) -> str:
    keyring = crypto.active()
    if keyring is not None and keyring.encrypts:
        return keyring.encrypt(text.encode(), aad.encode())
    if text.startswith((crypto.PREFIX, crypto.RAW)):
        return crypto.RAW + text
    return text


def _open(text: str, aad: str) -> str:
    if text.startswith(crypto.RAW):
        return text[len(crypto.RAW) :]
    if not text.startswith(crypto.PREFIX):
        return text
    keyring = crypto.active()
    if keyring is None:
        raise crypto.DecryptionError("encrypted value but no TRESEN_ENCRYPTION_KEYS configured")
    return keyring.decrypt(text, aad.encode()).decode()
