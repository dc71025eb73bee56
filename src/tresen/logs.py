"""Logging set-up: level and format (text or JSON lines), with request, workspace and
conversation ids from context; never personal data (callers log ids, not names or texts)."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID: ContextVar[str | None] = ContextVar("tresen_request_id", default=None)
WORKSPACE_ID: ContextVar[str | None] = ContextVar("tresen_workspace_id", default=None)
CONVERSATION_ID: ContextVar[str | None] = ContextVar("tresen_conversation_id", default=None)
FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_CONTEXT = (
    ("request_id", REQUEST_ID),
    ("workspace_id", WORKSPACE_ID),
    ("conversation_id", CONVERSATION_ID),
)


class ContextFilter(logging.Filter):
    """Copy the context ids onto every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always pass the record, with the ids added."""
        for name, var in _CONTEXT:
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [request=… workspace=… conversation=…]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The line, with the context ids that are set."""
        line = super().format(record)
        ids = [
            f"{name.removesuffix('_id')}={value}"
            for name, _ in _CONTEXT
            if (value := getattr(record, name, None))
        ]
        if not ids:
            return line
        first, sep, rest = line.partition("\n")
        return f"{first} [{' '.join(ids)}]{sep}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, context ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as JSON."""
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, _ in _CONTEXT:
            value = getattr(record, name, None)
            if value:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of each record (it may be swapped)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr at `level` in `fmt`; keep libraries that print URLs with credentials quiet."""
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be text or json, got {fmt!r}")
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, StderrHandler):  # ours from an earlier call; others stay (pytest's)
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs full URLs at INFO; some providers put credentials in URLs (Telegram bot tokens).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
