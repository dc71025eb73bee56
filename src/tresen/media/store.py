"""Media files in the install's file store (`media/<workspace>/<sha256 prefix>/<id>`), signed links."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import unicodedata
from dataclasses import dataclass
from typing import TypeGuard

from tresen.db import crypto
from tresen.media.sniff import EXTENSIONS, HEAD_BYTES, MediaRefused, check, normalise
from tresen.storage import FileStore, valid_key

PENDING, STORED, UNAVAILABLE = "pending", "stored", "unavailable"
PUBLIC_LINK_SECONDS = 7 * 24 * 3600
"""How long a signed link to an outbound file works (sends are retried well within it)."""

STAGING = "media/incoming"
"""Files waiting for the media.fetch job (e-mail attachments), removed once it ran."""

_UNSAFE = re.compile(r"[^\w .()+,-]")


@dataclass(frozen=True)
class Saved:
    """A checked file written to the file store."""

    path: str
    content_type: str
    size: int
    sha256: str


def clean_filename(name: str | None) -> str | None:
    """A file name safe to show and to offer for download: no paths, controls or markup."""
    if not name:
        return None
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name))[-1]
    kept = "".join(c for c in base if unicodedata.category(c)[0] != "C")
    kept = _UNSAFE.sub("_", kept).strip(" .")
    return kept[:200] or None


def stored_filename(name: str | None, content_type: str | None) -> str | None:
    """A clean file name whose extension is that of the detected type ("x.html" → "x.gif")."""
    cleaned = clean_filename(name)
    known = EXTENSIONS.get(normalise(content_type))
    if cleaned is None or known is None:
        return cleaned
    stem, dot, extension = cleaned.rpartition(".")
    if dot and f".{extension.lower()}" in known:
        return cleaned
    return f"{stem if dot and stem else cleaned}{known[0]}"[-200:]


def save(
    files: FileStore,
    workspace_id: str,
    media_id: str,
    content: bytes,
    declared: str | None,
    max_bytes: int,
) -> Saved:
    """Check size and type, then write the file once (sealed when encryption is on)."""
    if len(content) > max_bytes:
        raise MediaRefused(
            "too_large",
            "the file is {size} bytes; at most {max} are accepted",
            params={"size": len(content), "max": max_bytes},
        )
    if not content:
        raise MediaRefused("empty", "the file is empty")
    content_type = check(declared, content[:HEAD_BYTES])
    digest = hashlib.sha256(content).hexdigest()
    relative = f"media/{workspace_id}/{digest[:2]}/{media_id}"
    files.put(relative, crypto.seal_bytes(content))
    return Saved(relative, content_type, len(content), digest)


def is_media_key(key: str | None) -> TypeGuard[str]:
    """Whether a stored path names a file under media/ (never anything else in the store)."""
    return bool(key) and str(key).startswith("media/") and valid_key(str(key))


def load(files: FileStore, key: str | None) -> bytes | None:
    """A stored media file's content (decrypted), or None when there is none."""
    if key is None or not is_media_key(key):
        return None
    raw = files.get(key)
    return None if raw is None else crypto.open_bytes(raw)


def _signature(secret: str, media_id: str, expires: int) -> str:
    message = f"media:{media_id}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def public_link(
    base_url: str, secret: str, media_id: str, seconds: int = PUBLIC_LINK_SECONDS
) -> str:
    """A signed, expiring URL a provider can fetch an outbound file from."""
    expires = int(time.time()) + seconds
    sig = _signature(secret, media_id, expires)
    return f"{base_url.rstrip('/')}/media/public/{media_id}?exp={expires}&sig={sig}"


def link_valid(secret: str, media_id: str, exp: str, sig: str) -> bool:
    """Whether a public link's signature matches and it has not expired."""
    if not exp.isdigit() or len(exp) > 12 or int(exp) < time.time():
        return False
    return hmac.compare_digest(_signature(secret, media_id, int(exp)), sig)


VISITOR_LINK_SECONDS = 24 * 3600
"""How long a file link handed to a web chat session works (the widget gets fresh ones)."""


def _visitor_signature(secret: str, channel_id: str, media_id: str, visitor: str, exp: int) -> str:
    message = f"webchat-file:{channel_id}:{media_id}:{visitor}:{exp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def visitor_link(
    secret: str, channel_id: str, media_id: str, visitor: str, seconds: int = VISITOR_LINK_SECONDS
) -> str:
    """A link (relative to the chat's API) to one file, valid only for this visitor's session."""
    expires = int(time.time()) + seconds
    sig = _visitor_signature(secret, channel_id, media_id, visitor, expires)
    return f"files/{media_id}?exp={expires}&sig={sig}"


def visitor_link_valid(
    secret: str, channel_id: str, media_id: str, visitor: str, exp: str, sig: str
) -> bool:
    """Whether a web chat file link was issued to this visitor and has not expired."""
    if not exp.isdigit() or len(exp) > 12 or int(exp) < time.time():
        return False
    expected = _visitor_signature(secret, channel_id, media_id, visitor, int(exp))
    return hmac.compare_digest(expected, sig)
