"""Key fingerprints, and the check that every process of an install runs with the same keys."""

from __future__ import annotations

import hashlib

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.crypto import parse_keys
from tresen.db.tables import InstallKey
from tresen.db.upsert import insert_ignore
from tresen.settings import Settings

SECRET = "secret_key"
ENCRYPTION = "encryption:"


class KeyMismatch(RuntimeError):
    """This process's keys are not the ones the install was set up with."""


def fingerprint(key: bytes) -> str:
    """A short, one-way name of a key: safe to log, print and compare."""
    return hashlib.sha256(b"tresen-key-fingerprint\0" + key).hexdigest()[:16]


def secret_fingerprint(settings: Settings) -> str:
    """The fingerprint of TRESEN_SECRET_KEY ("" when unset)."""
    return fingerprint(settings.secret_key.encode()) if settings.secret_key else ""


def encryption_fingerprints(settings: Settings) -> dict[str, str]:
    """Key id → fingerprint of each key in TRESEN_ENCRYPTION_KEYS."""
    keyring = parse_keys(settings.encryption_keys)
    if keyring is None:
        return {}
    return {key_id: fingerprint(key) for key_id, key in sorted(keyring.keys.items())}


def encryption_summary(settings: Settings) -> str:
    """`id=fingerprint,...` of the encryption keys, the one that encrypts first ("" when none)."""
    keyring = parse_keys(settings.encryption_keys)
    if keyring is None:
        return ""
    prints = encryption_fingerprints(settings)
    first = [keyring.current] if keyring.current else ["none"]
    order = first + [k for k in prints if k != keyring.current]
    return ",".join(k if k == "none" else f"{k}={prints[k]}" for k in order)


async def check_install_keys(session: AsyncSession, settings: Settings) -> None:
    """Record this install's key fingerprints on first start; refuse a process with other keys."""
    ours = {SECRET: secret_fingerprint(settings)} | {
        ENCRYPTION + key_id: print_ for key_id, print_ in encryption_fingerprints(settings).items()
    }
    if ours[SECRET]:
        await session.execute(
            insert_ignore(session, InstallKey).values(
                [{"name": name, "fingerprint": print_} for name, print_ in ours.items()]
            )
        )
    recorded = {row.name: row.fingerprint for row in await session.scalars(select(InstallKey))}
    secret = recorded.get(SECRET)
    if secret and secret != ours[SECRET]:
        raise KeyMismatch(
            "TRESEN_SECRET_KEY is not the key this install was set up with "
            f"(install: {secret}, this process: {ours[SECRET] or 'none'}); "
            "every web process, worker and CLI call of one install needs the same key; to "
            "change it on purpose, see `tresen keys rotate-secret` (docs/operations.md)"
        )
    encrypted_under = sorted(n[len(ENCRYPTION) :] for n in recorded if n.startswith(ENCRYPTION))
    if encrypted_under and not settings.encryption_keys:
        raise KeyMismatch(
            "this install encrypts data at rest (key ids: "
            f"{', '.join(encrypted_under)}), but TRESEN_ENCRYPTION_KEYS is not set"
        )
    for name, print_ in ours.items():
        if name.startswith(ENCRYPTION) and recorded.get(name, print_) != print_:
            raise KeyMismatch(
                f"encryption key {name[len(ENCRYPTION) :]!r} in TRESEN_ENCRYPTION_KEYS is not the "
                f"key this install uses under that id (install: {recorded[name]}, "
                f"this process: {print_}); a key id names one key for good"
            )


async def rotate_secret(session: AsyncSession, settings: Settings) -> tuple[str, str]:
    """Make TRESEN_SECRET_KEY the install's key in place of one in TRESEN_PREVIOUS_SECRET_KEYS.

    Returns (old, new) fingerprints; KeyMismatch when the key being replaced is not among the
    previous keys (which erasure suppression keeps needing), or nothing is recorded yet.
    """
    new = secret_fingerprint(settings)
    if not new:
        raise KeyMismatch("set TRESEN_SECRET_KEY to the new key first")
    recorded = await session.scalar(select(InstallKey.fingerprint).where(InstallKey.name == SECRET))
    if recorded is None:
        raise KeyMismatch("this install has no key recorded yet; start it once with its key")
    if recorded == new:
        return recorded, new
    previous = {fingerprint(k.encode()) for k in settings.suppression_keys[1:]}
    if recorded not in previous:
        raise KeyMismatch(
            f"the install's key ({recorded}) is not in TRESEN_PREVIOUS_SECRET_KEYS; put the key "
            "being replaced there (and keep it there: erased people's suppression hashes use it)"
        )
    await session.execute(
        update(InstallKey).where(InstallKey.name == SECRET).values(fingerprint=new)
    )
    return recorded, new
