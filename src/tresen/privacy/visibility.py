"""What agents may read: no message content of a contact before consent, none while restricted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select

from tresen.db.tables import Contact, Conversation, Message

WAITING_FOR_CONSENT = "consent"
RESTRICTED = "restricted"
REFUSED = "refused"
"""Lists only: the person said no to the privacy notice (their content stays withheld)."""


@dataclass(frozen=True)
class Withholding:
    """Which contacts' message content stays hidden from agents and API clients."""

    states: frozenset[str]
    """Consent states whose inbound messages are withheld (the person has not agreed)."""

    def reason(self, consent_state: str | None, restricted: bool, direction: str) -> str | None:
        """Why one message's content is withheld, or None when it may be shown."""
        if restricted:
            return RESTRICTED
        if direction == "inbound" and consent_state in self.states:
            return WAITING_FOR_CONSENT
        return None

    def conversation_reason(self, consent_state: str | None, restricted: bool) -> str | None:
        """Why a conversation's latest customer text is withheld in lists, or None."""
        return self.reason(consent_state, restricted, "inbound")

    def message_hidden(self) -> ColumnElement[bool]:
        """SQL: the message (in `messages`) belongs to a contact whose content is withheld."""
        restricted = (
            select(Conversation.id)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.restricted_at.is_not(None))
        )
        clauses: list[Any] = [Message.conversation_id.in_(restricted)]
        if self.states:
            waiting = (
                select(Conversation.id)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Contact.consent_state.in_(sorted(self.states)))
            )
            clauses.append(
                and_(Message.direction == "inbound", Message.conversation_id.in_(waiting))
            )
        return or_(*clauses)


def withholding(settings: Any) -> Withholding:
    """The rule the settings ask for.

    Before consent means: asked and not answered, or refused; with consent-first on also
    "unknown" (the question is on its way). TRESEN_AGENTS_SEE_BEFORE_CONSENT shows them.
    Restricted contacts (Art. 18) are withheld whatever the setting says.
    """
    if getattr(settings, "agents_see_before_consent", False):
        return Withholding(frozenset())
    states = {"asked", "refused"}
    if getattr(settings, "consent_first", True):
        states.add("unknown")
    return Withholding(frozenset(states))


SHOW_ALL = Withholding(frozenset())
