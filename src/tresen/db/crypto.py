"""Encryption at rest: AES-256-GCM with a key id in every ciphertext, so keys can rotate."""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "tresen:enc1:"
RAW = "tresen:raw:"
"""Marks a plaintext value that happens to start like a ciphertext (written as it came)."""
PLAINTEXT = "none"
"""As the first entry of TRESEN_ENCRYPTION_KEYS: write plaintext, decrypt with the keys after."""
FILE_MAGIC = b"TRESENC1"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_NONCE = 12


class DecryptionError(ValueError):
    """A ciphertext names an unknown key, or was altered."""


@dataclass(frozen=True)
class Keyring:
    """The keys of this install; `current` encrypts, every key decrypts."""

    current: str | None
    """None: decrypt only, new data is written in plaintext (to turn encryption off)."""
    keys: dict[str, bytes]

    @property
    def encrypts(self) -> bool:
        """Whether new data is encrypted."""
        return self.current is not None

    def encrypt(self, plaintext: bytes, aad: bytes) -> str:
        """A text token: prefix, key id, base64 of nonce and ciphertext."""
        if self.current is None:
            raise ValueError("this keyring only decrypts")
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, plaintext, aad)
        return f"{PREFIX}{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, aad: bytes) -> bytes:
        """The plaintext of a token made by `encrypt` under any known key."""
        key_id, _, blob = token[len(PREFIX) :].partition(":")
        key = self.keys.get(key_id)
        if key is None:
            raise DecryptionError(f"ciphertext under unknown key id {key_id!r}")
        try:
            raw = base64.b64decode(blob, validate=True)
            return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], aad)
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise DecryptionError(f"ciphertext under key {key_id!r} does not verify") from exc

    def seal_file(self, content: bytes) -> bytes:
        """File bytes: magic, key id, nonce, ciphertext (authenticated)."""
        if self.current is None:
            raise ValueError("this keyring only decrypts")
        kid = self.current.encode()
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, content, FILE_MAGIC + kid)
        return FILE_MAGIC + bytes([len(kid)]) + kid + nonce + sealed

    def open_file(self, content: bytes) -> bytes:
        """The plaintext of bytes made by `seal_file`."""
        size = content[len(FILE_MAGIC)]
        start = len(FILE_MAGIC) + 1
        kid = content[start : start + size]
        key = self.keys.get(kid.decode(errors="replace"))
        if key is None:
            raise DecryptionError(f"file encrypted under unknown key id {kid!r}")
        body = content[start + size :]
        try:
            return AESGCM(key).decrypt(body[:_NONCE], body[_NONCE:], FILE_MAGIC + kid)
        except InvalidTag as exc:
            raise DecryptionError("encrypted file does not verify") from exc


def key_id_of(token: str) -> str | None:
    """The key id a stored value is encrypted under, or None for plaintext."""
    if not token.startswith(PREFIX):
        return None
    return token[len(PREFIX) :].partition(":")[0]


def file_key_id(content: bytes) -> str | None:
    """The key id of an encrypted file's bytes, or None for a plain file."""
    if not content.startswith(FILE_MAGIC) or len(content) <= len(FILE_MAGIC):
        return None
    size = content[len(FILE_MAGIC)]
    start = len(FILE_MAGIC) + 1
    return content[start : start + size].decode(errors="replace")


def parse_keys(text: str) -> Keyring | None:
    """Keys from "id=base64,id2=base64" (the first encrypts); None for an empty setting."""
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part == PLAINTEXT and not order and not keys:
            order.append(PLAINTEXT)
            continue
        key_id, sep, encoded = part.partition("=")
        key_id = key_id.strip()
        if not sep or not _KEY_ID.match(key_id):
            raise ValueError(
                "each key is written ID=BASE64 with an id of letters, digits, '-' or '_' "
                "(at most 32); create one with `tresen privacy new-key`"
            )
        try:
            raw = base64.urlsafe_b64decode(encoded.strip() + "=" * (-len(encoded.strip()) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ValueError(f"key {key_id!r} must be 32 bytes in base64 (AES-256)")
        if key_id in keys:
            raise ValueError(f"key id {key_id!r} appears twice")
        keys[key_id] = raw
        order.append(key_id)
    if not order:
        return None
    if order[0] == PLAINTEXT:
        if not keys:
            raise ValueError(f"{PLAINTEXT!r} must be followed by the keys to decrypt with")
        return Keyring(None, keys)
    return Keyring(order[0], keys)


def new_key() -> str:
    """A fresh random 32-byte key in URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


_active: Keyring | None = None


def use(keyring: Keyring | None) -> None:
    """Make this keyring the one the encrypted column types and media files use."""
    global _active
    _active = keyring


def active() -> Keyring | None:
    """The keyring in use (None: encryption at rest is off)."""
    return _active


def seal_bytes(content: bytes) -> bytes:
    """File content as stored: encrypted when a keyring that encrypts is in use."""
    return _active.seal_file(content) if _active is not None and _active.encrypts else content


def open_bytes(content: bytes) -> bytes:
    """Stored file content as plaintext (plain files pass through)."""
    if file_key_id(content) is None:
        return content
    if _active is None:
        raise DecryptionError("file is encrypted but no TRESEN_ENCRYPTION_KEYS are configured")
    return _active.open_file(content)
