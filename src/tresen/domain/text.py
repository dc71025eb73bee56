"""Untrusted text from outside made storable: control characters and lone surrogates removed."""

from __future__ import annotations

import re
from typing import Any

# C0 and C1 controls except tab, line feed and carriage return; DEL; lone UTF-16 surrogates
# (JSON may carry "\ud800"; no database encoding can store one). NUL is the one PostgreSQL
# refuses in text and jsonb, the others make text that no customer meant to send.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def strip_control(text: str) -> str:
    """`text` without control characters (tab and line breaks stay) or lone surrogates."""
    return _UNSTORABLE.sub("", text)


def strip_control_deep(value: Any) -> Any:
    """The same for every string (keys included) inside JSON-like data."""
    if isinstance(value, str):
        return strip_control(value)
    if isinstance(value, dict):
        return {strip_control_deep(k): strip_control_deep(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strip_control_deep(v) for v in value]
    return value
