"""Limits on request bodies that parsers would otherwise choke on (deeply nested JSON)."""

from __future__ import annotations

import re

MAX_JSON_DEPTH = 32
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = re.compile(rb"[^\[\]{}]+")


def json_depth(body: bytes, stop_at: int = MAX_JSON_DEPTH) -> int:
    """How deeply a JSON text nests (strings ignored), counted up to just over stop_at."""
    brackets = _NOT_BRACKETS.sub(b"", _STRINGS.sub(b"", body))
    depth = deepest = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_at:
                    break
        else:
            depth -= 1
    return deepest


def too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when a body nests JSON deeper than limit."""
    return json_depth(body, limit) > limit
