"""Suppression hashes: an erased person's address, kept only as a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import Contact, ContactIdentity, Suppression
from tresen.db.types import utcnow
from tresen.domain.ids import new_id

CHUNK = 500
_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{5,}$")


Keys = str | Sequence[str]
"""The secret key, or the secret key and the ones it replaced (Settings.suppression_keys)."""


def _keys(keys: Keys) -> list[str]:
    return [keys] if isinstance(keys, str) else list(keys)


class Suppressed(ValueError):
    """The address belongs to an erased person who has not consented again."""


def normalise(address: str) -> str:
    """One form per address: phone numbers as digits, e-mail addresses and ids case-folded."""
    text = unicodedata.normalize("NFKC", address).strip()
    if _PHONE.match(text):
        digits = re.sub(r"\D", "", text)
        return digits[2:] if digits.startswith("00") else digits
    return text.casefold()


def address_hash(secret_key: str, address: str) -> str:
    """HMAC-SHA256 of the normalised address under the install's secret key."""
    if not secret_key:
        raise ValueError("suppression hashes need TRESEN_SECRET_KEY")
    message = ("tresen-suppression-v1:" + normalise(address)).encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


async def suppress(
    session: AsyncSession, secret_key: str, workspace_id: str, address: str, contact_id: str
) -> None:
    """Remember an erased address (once per workspace)."""
    digest = address_hash(secret_key, address)
    found = await session.scalar(
        select(Suppression.id).where(
            Suppression.workspace_id == workspace_id, Suppression.address_hash == digest
        )
    )
    if found is None:
        session.add(
            Suppression(
                id=new_id(),
                workspace_id=workspace_id,
                address_hash=digest,
                erased_contact_id=contact_id,
                created_at=utcnow(),
            )
        )


async def is_suppressed(
    session: AsyncSession, secret_key: Keys, workspace_id: str, address: str
) -> bool:
    """Whether this address was erased in this workspace (hashed under any of the keys)."""
    digests = [address_hash(key, address) for key in _keys(secret_key)]
    found = await session.scalar(
        select(Suppression.id)
        .where(Suppression.workspace_id == workspace_id, Suppression.address_hash.in_(digests))
        .limit(1)
    )
    return found is not None


async def refused_imports(
    session: AsyncSession, secret_key: Keys, workspace_id: str, addresses: Iterable[str]
) -> set[str]:
    """The addresses `check_import` refuses, found with a few queries for many addresses."""
    by_hash: dict[str, list[str]] = {}
    for address in set(addresses):
        for key in _keys(secret_key):
            by_hash.setdefault(address_hash(key, address), []).append(address)
    erased: set[str] = set()
    hashes = list(by_hash)
    for lo in range(0, len(hashes), CHUNK):
        found = await session.scalars(
            select(Suppression.address_hash).where(
                Suppression.workspace_id == workspace_id,
                Suppression.address_hash.in_(hashes[lo : lo + CHUNK]),
            )
        )
        erased.update(a for digest in found for a in by_hash[digest])
    forms = {a: _forms(a) for a in erased}
    wanted = sorted(set().union(*forms.values())) if forms else []
    again: set[str] = set()
    for lo in range(0, len(wanted), CHUNK):
        again.update(
            await session.scalars(
                select(ContactIdentity.address)
                .join(Contact, Contact.id == ContactIdentity.contact_id)
                .where(
                    ContactIdentity.workspace_id == workspace_id,
                    ContactIdentity.address.in_(wanted[lo : lo + CHUNK]),
                    Contact.consent_state == "granted",
                )
            )
        )
    return {a for a in erased if not forms[a] & again}


def _forms(address: str) -> set[str]:
    """The ways an identity may store an address: as given, normalised, with a plus."""
    wanted = normalise(address)
    return {address, wanted, "+" + wanted}


async def check_import(
    session: AsyncSession, secret_key: Keys, workspace_id: str, address: str
) -> None:
    """Refuse to import an erased address unless its person has consented again since."""
    if await refused_imports(session, secret_key, workspace_id, [address]):
        raise Suppressed(
            "this address belongs to a person whose data was erased; "
            "they must write to you and consent again before it can be imported"
        )
