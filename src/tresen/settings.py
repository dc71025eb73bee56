"""One Settings object, read from TRESEN_* environment variables or tresen.toml."""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path


class SettingsError(ValueError):
    """A configuration value is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of one tresen process."""

    data_dir: Path = field(default_factory=lambda: Path("./tresen-data"))
    database_url: str = ""
    redis_url: str = ""
    secret_key: str = ""
    base_url: str = "http://127.0.0.1:8000"
    max_webhook_bytes: int = 1_000_000
    worker_concurrency: int = 32
    job_lease_seconds: float = 30.0
    send_timeout_seconds: float = 10.0
    max_send_attempts: int = 8
    database_pool_size: int = 10
    consent_first: bool = True
    mailbox_poll_seconds: float = 20.0
    max_media_bytes: int = 16 * 1024 * 1024
    retention_hours: float = 1.0
    optin_token_hours: float = 48.0
    optin_purge_days: float = 7.0
    optin_confirmations_per_day: int = 3
    notification_poll_seconds: float = 2.0
    shop_url: str = ""  # the shop's order API for the bot's order status (GET {url}/orders/{n})
    shop_token: str = ""
    shop_timeout_seconds: float = 5.0
    llm_base_url: str = ""  # an OpenAI-compatible API; empty = the bot's plain texts only
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout_seconds: float = 8.0
    agents_see_before_consent: bool = False
    encryption_keys: str = ""
    """Keys for encryption at rest: "id=base64key,..."; the first encrypts, all decrypt."""
    link_tracking_store_client: bool = False
    """Store IP address and user agent of per-person (consented) link clicks."""
    broadcast_weekly_cap: int = 0
    """At most this many broadcasts per person in 7 days for new campaigns (0: no cap)."""

    @property
    def effective_database_url(self) -> str:
        """The configured database URL, or the SQLite file in the data dir."""
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tresen.db').resolve()}"

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some values replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]


def normalise_database_url(url: str) -> str:
    """Map plain postgresql:// and sqlite:// URLs to their async drivers."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise SettingsError(
        f"TRESEN_DATABASE_URL must start with postgresql:// or sqlite://, got {url.split(':', 1)[0]!r}"
    )


_INT_FIELDS = {
    "max_webhook_bytes",
    "max_media_bytes",
    "worker_concurrency",
    "max_send_attempts",
    "database_pool_size",
    "optin_confirmations_per_day",
    "broadcast_weekly_cap",
}
_FLOAT_FIELDS = {
    "job_lease_seconds",
    "send_timeout_seconds",
    "mailbox_poll_seconds",
    "retention_hours",
    "optin_token_hours",
    "optin_purge_days",
    "notification_poll_seconds",
    "shop_timeout_seconds",
    "llm_timeout_seconds",
}


_BOOL_FIELDS = {"consent_first", "agents_see_before_consent", "link_tracking_store_client"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _coerce(name: str, raw: object) -> object:
    if name in _BOOL_FIELDS:
        text = str(raw).strip().lower()
        if text not in _TRUE | _FALSE:
            raise SettingsError(f"setting {name} must be true or false, got {raw!r}")
        return text in _TRUE
    try:
        if name == "data_dir":
            return Path(str(raw)).expanduser()
        if name in _INT_FIELDS:
            return int(str(raw))
        if name in _FLOAT_FIELDS:
            return float(str(raw))
    except ValueError as exc:
        raise SettingsError(f"setting {name} must be a number, got {raw!r}") from exc
    return str(raw)


def load_settings(env: dict[str, str] | None = None, toml_path: Path | None = None) -> Settings:
    """Read settings: tresen.toml first, environment variables win."""
    env = dict(os.environ if env is None else env)
    values: dict[str, object] = {}
    path = toml_path or Path(env.get("TRESEN_CONFIG", "tresen.toml"))
    if path.is_file():
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: {exc}") from exc
        known = {f.name for f in fields(Settings)}
        for key, raw in doc.items():
            if key not in known:
                raise SettingsError(f"{path}: unknown setting {key!r}")
            values[key] = _coerce(key, raw)
    for f in fields(Settings):
        raw_env = env.get("TRESEN_" + f.name.upper())
        if raw_env is not None and raw_env != "":
            values[f.name] = _coerce(f.name, raw_env)
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.database_url:
        normalise_database_url(settings.database_url)
    if settings.encryption_keys:
        from tresen.db.crypto import parse_keys

        try:
            parse_keys(settings.encryption_keys)
        except ValueError as exc:
            raise SettingsError(f"TRESEN_ENCRYPTION_KEYS: {exc}") from exc
    return settings


def ensure_secret_key(settings: Settings) -> Settings:
    """Use the configured secret key, or one persisted in the data dir."""
    if settings.secret_key:
        return settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key_file = settings.data_dir / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48), encoding="utf-8")
        key_file.chmod(0o600)
    return settings.with_overrides(secret_key=key_file.read_text(encoding="utf-8").strip())
