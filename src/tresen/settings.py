"""One Settings object, read from TRESEN_* environment variables or tresen.toml."""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from tresen.db.crypto import parse_keys


class SettingsError(ValueError):
    """A configuration value is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of one tresen process."""

    data_dir: Path = field(default_factory=lambda: Path("./tresen-data"))
    """The SQLite file, the generated secret key and stored media files."""
    database_url: str = ""
    """`postgresql://user@host/db` for PostgreSQL; empty: the SQLite file in the data dir."""
    redis_url: str = ""
    """Redis for live inbox events across web processes and one send rate limit per channel."""
    redis_prefix: str = "tresen:"
    """Start of every Redis key and pub/sub channel, so several installs can share one Redis."""
    secret_key: str = ""
    """Signs sessions and links; empty: generated once into the data dir."""
    previous_secret_keys: str = field(default="", repr=False)
    """Keys this install used before (comma-separated, newest first), kept after
    `tresen keys rotate-secret` so erased people stay suppressed (never logged)."""
    base_url: str = "http://127.0.0.1:8000"
    """The public URL of this install; webhook URLs and links are built from it."""
    max_webhook_bytes: int = 1_000_000
    """Larger webhook bodies are refused with 413."""
    worker_concurrency: int = 32
    """Jobs one worker runs at once (`tresen worker --concurrency` overrides it)."""
    job_lease_seconds: float = 30.0
    """A crashed worker's jobs (and campaign batches) are picked up by another after this."""
    send_timeout_seconds: float = 10.0
    """HTTP time-out towards the providers."""
    max_send_attempts: int = 8
    """Sends through the API are retried with backoff this often before they fail."""
    database_pool_size: int = 10
    """PostgreSQL connections per process (the same number again as overflow)."""
    consent_first: bool = True
    """Send the privacy notice and ask for consent when a new contact writes."""
    mailbox_poll_seconds: float = 20.0
    """How often workers fetch new mail of e-mail channels (0: off)."""
    max_media_bytes: int = 16 * 1024 * 1024
    """Largest file accepted from customers, providers and uploads."""
    retention_hours: float = 1.0
    """How often workers apply the retention periods (0: off)."""
    event_retention_days: float = 7.0
    """Dispatched domain events are deleted after this many days (0: kept for ever)."""
    optin_token_hours: float = 48.0
    """How long a subscription's confirmation (link, reply, button) is valid."""
    optin_purge_days: float = 7.0
    """Unconfirmed subscription requests are deleted after this (0: never)."""
    optin_confirmations_per_day: int = 3
    """Confirmation messages per address and 24 hours (against list-bombing)."""
    notification_poll_seconds: float = 2.0
    """How often workers turn delivery-state changes into status webhooks (0: off)."""
    shop_url: str = ""
    """The shop's order API for the bot's order status (`GET {url}/orders/{number}`)."""
    shop_token: str = ""
    """Bearer token for the shop's order API."""
    shop_timeout_seconds: float = 5.0
    """Time-out of one order look-up."""
    llm_base_url: str = ""
    """An OpenAI-compatible API that phrases bot answers (empty: the bot's plain texts only)."""
    llm_model: str = ""
    """The model name sent to the OpenAI-compatible API."""
    llm_api_key: str = ""
    """API key of the OpenAI-compatible API (empty for a local one such as Ollama)."""
    llm_timeout_seconds: float = 8.0
    """After this the bot's plain answer goes out instead of the phrased one."""
    agents_see_before_consent: bool = False
    """Show agents and API clients what a contact wrote before they consented."""
    encryption_keys: str = ""
    """Keys for encryption at rest: "id=base64key,..."; the first encrypts, all decrypt."""
    link_tracking_store_client: bool = False
    """Store IP address and user agent of per-person (consented) link clicks."""
    shutdown_seconds: float = 20.0
    """At SIGTERM, how long a worker lets running jobs and campaign batches finish."""
    worker_metrics_port: int = 0
    """Port on which `tresen worker` serves /metrics and /healthz (0: none)."""
    worker_metrics_host: str = "127.0.0.1"
    """Address on which `tresen worker` serves /metrics and /healthz."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR: the least severe log lines written."""
    log_format: str = "text"
    """text, or json (one JSON object a line)."""
    access_log: bool = False
    """Log one line per HTTP request: method, route template (never the raw path), status, time."""
    broadcast_weekly_cap: int = 0
    """At most this many broadcasts per person in 7 days for new campaigns (0: no cap)."""
    trusted_proxies: str = ""
    """Addresses (comma-separated, or CIDR ranges) of reverse proxies whose X-Forwarded-For and
    X-Forwarded-Proto are believed; empty: the peer address is the client (no header trusted)."""
    metrics_token: str = ""
    """Bearer token Prometheus sends to /metrics; empty: /metrics answers loopback clients only."""
    outbound_allow_hosts: str = ""
    """Hosts ("name" or "name:port", comma-separated) that server-side requests may reach even
    on loopback or private addresses (simulators, an intranet shop); all others must be public."""

    storage: str = "local"
    """Where media files live: local (the data dir) or s3 (one bucket every process reaches)."""
    s3_bucket: str = ""
    """The bucket of TRESEN_STORAGE=s3 (it must exist)."""
    s3_prefix: str = ""
    """Start of every object key (e.g. `tresen/`), so several installs can share one bucket."""
    s3_endpoint_url: str = ""
    """An S3-compatible server (MinIO, Ceph, …); empty: Amazon S3."""
    s3_region: str = ""
    """The bucket's region (empty: the client's default)."""
    s3_access_key_id: str = ""
    """Access key of the bucket (empty: the standard AWS credential chain)."""
    s3_secret_access_key: str = field(default="", repr=False)
    """Secret of the access key (never logged or printed)."""
    worker_heartbeat_seconds: float = 45.0
    """/readyz is not ready when no worker wrote a heartbeat for this long (workers beat every 10 s)."""

    @property
    def effective_database_url(self) -> str:
        """The configured database URL, or the SQLite file in the data dir."""
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tresen.db').resolve()}"

    @property
    def suppression_keys(self) -> tuple[str, ...]:
        """The secret key, then the previous ones: erasure suppression hashes under any count."""
        previous = [k.strip() for k in self.previous_secret_keys.split(",") if k.strip()]
        return tuple(k for k in (self.secret_key, *previous) if k)

    @property
    def uses_postgres(self) -> bool:
        """Whether the database is a PostgreSQL server (processes may run on many machines)."""
        return self.effective_database_url.startswith("postgresql")

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some values replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]


OTHER_VARIABLES: dict[str, str] = {
    "TRESEN_CONFIG": "The settings file to read (default `tresen.toml` in the working directory).",
    "TRESEN_EMBEDDED_WORKER": "`0` keeps a web process from running jobs itself "
    "(`tresen serve --no-worker` sets it).",
}
"""Environment variables that are not fields of Settings."""


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
    "worker_metrics_port",
}
_FLOAT_FIELDS = {
    "job_lease_seconds",
    "send_timeout_seconds",
    "mailbox_poll_seconds",
    "retention_hours",
    "event_retention_days",
    "optin_token_hours",
    "optin_purge_days",
    "notification_poll_seconds",
    "shop_timeout_seconds",
    "llm_timeout_seconds",
    "shutdown_seconds",
    "worker_heartbeat_seconds",
}


_BOOL_FIELDS = {
    "consent_first",
    "agents_see_before_consent",
    "link_tracking_store_client",
    "access_log",
}
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
    check_storage(settings)
    if settings.worker_heartbeat_seconds <= 10:
        raise SettingsError(
            "TRESEN_WORKER_HEARTBEAT_SECONDS must be more than 10 (workers beat every 10 s)"
        )
    if settings.encryption_keys:
        try:
            parse_keys(settings.encryption_keys)
        except ValueError as exc:
            raise SettingsError(f"TRESEN_ENCRYPTION_KEYS: {exc}") from exc
    return settings


def check_storage(settings: Settings) -> None:
    """SettingsError when the file storage settings cannot work."""
    if settings.storage not in ("local", "s3"):
        raise SettingsError(f"TRESEN_STORAGE must be local or s3, got {settings.storage!r}")
    if settings.storage == "s3" and not settings.s3_bucket:
        raise SettingsError("TRESEN_STORAGE=s3 needs TRESEN_S3_BUCKET (an existing bucket)")
    prefix = settings.s3_prefix.strip("/")
    if prefix and not all(p and p not in (".", "..") for p in prefix.split("/")):
        raise SettingsError("TRESEN_S3_PREFIX must be a plain path such as `tresen/`")


def ensure_secret_key(settings: Settings) -> Settings:
    """Use the configured secret key; on SQLite, one persisted beside the database file.

    On PostgreSQL the processes of an install may run anywhere, so a key made up by one of them
    would differ from the others': there the key must be configured.
    """
    if settings.secret_key:
        return settings
    if settings.uses_postgres:
        raise SettingsError(
            "TRESEN_SECRET_KEY is not set; on PostgreSQL every web process, worker and CLI call "
            "needs the same key: create one with `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'` and set it in every process's environment"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = settings.data_dir / "secret_key"
    if not key_file.exists():
        handle = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(48))
    return settings.with_overrides(secret_key=key_file.read_text(encoding="utf-8").strip())


def secret_key_from_file(settings: Settings) -> Settings:
    """The settings with the key persisted in the data dir, if there is one (nothing is created)."""
    key_file = settings.data_dir / "secret_key"
    if settings.secret_key or not key_file.is_file():
        return settings
    return settings.with_overrides(secret_key=key_file.read_text(encoding="utf-8").strip())
