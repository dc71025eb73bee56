"""One bot turn: hand-over words, flows with slots, FAQ match, fallback; no I/O, state is a dict."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tresen.bot.blacklist import Blacklist
from tresen.bot.flows import FlowRunner, FlowSpec
from tresen.bot.kb import KnowledgeBase
from tresen.bot.language import detect_language
from tresen.bot.matcher import Matcher
from tresen.bot.persona import Persona, strip_emoji
from tresen.bot.text import clean, fold

MISSES_BEFORE_HANDOVER = 2
HANDOVER_WORDS = (
    "mitarbeiter",
    "mitarbeiterin",
    "mensch",
    "menschen",
    "echte person",
    "berater",
    "beraterin",
    "kundenservice",
    "agent",
    "human",
    "real person",
    "someone real",
    "operator",
    "representative",
)
GREETING_WORDS = frozenset(
    [
        "hallo",
        "hi",
        "hey",
        "hello",
        "moin",
        "servus",
        "gruss",
        "grussgott",
        "gott",
        "guten",
        "tag",
        "morgen",
        "abend",
        "hallochen",
        "huhu",
        "good",
        "morning",
        "evening",
        "afternoon",
        "there",
        "liebes",
        "team",
        "ihr",
        "zusammen",
        "leute",
    ]
)
FRUSTRATION_WORDS = (
    "scheisse",
    "scheiss",
    "mist",
    "verdammt",
    "nervt",
    "nervig",
    "frechheit",
    "unverschamt",
    "katastrophe",
    "sauerei",
    "bloder bot",
    "dummer bot",
    "du verstehst nichts",
    "das hilft nicht",
    "hilft mir nicht",
    "useless",
    "stupid",
    "ridiculous",
    "wtf",
    "not helpful",
    "this is not helping",
)


class Reason:
    """Why the bot handed a conversation over."""

    ASKED = "asked_for_person"
    NOT_UNDERSTOOD = "not_understood"
    FRUSTRATION = "frustration"
    FLOW = "flow"


@dataclass(frozen=True)
class Turn:
    """What the bot says to one message, what happened, and the state to store."""

    outcome: str  # answered | fallback | handover | flow | blacklisted
    texts: tuple[str, ...]
    state: dict[str, Any]
    language: str
    buttons: tuple[str, ...] = ()
    faq_key: str | None = None
    score: float | None = None
    handover: str | None = None


def _has_phrase(folded: str, phrases: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(p)}(?!\w)", folded) for p in phrases)


def wants_person(text: str) -> bool:
    """The customer asks for a person ("Mitarbeiter", "Mensch", "agent", "human", ...)."""
    return _has_phrase(fold(clean(text)), HANDOVER_WORDS)


def frustrated(text: str) -> bool:
    """Signs of frustration: angry words, a row of !!!/???, or a long message in capitals."""
    cleaned = clean(text)
    if _has_phrase(fold(cleaned), FRUSTRATION_WORDS) or re.search(r"[!?]{3,}", cleaned):
        return True
    letters = [ch for ch in cleaned if ch.isalpha()]
    return len(letters) >= 12 and sum(ch.isupper() for ch in letters) / len(letters) > 0.8


def greeting_only(text: str) -> bool:
    """A message that only says hello ("Hallo!", "Guten Tag", "hi there")."""
    words = re.findall(r"\w+", fold(clean(text)))
    return 0 < len(words) <= 4 and all(w in GREETING_WORDS for w in words)


@dataclass
class Bot:
    """A workspace's bot, built once per KB version."""

    kb: KnowledgeBase
    matcher: Matcher
    persona: Persona = field(default_factory=Persona)
    blacklist: Blacklist = field(default_factory=lambda: Blacklist(()))
    flows: Mapping[str, FlowSpec] = field(default_factory=dict)
    entry_flows: Mapping[str, str] = field(default_factory=dict)

    def language(self, text: str) -> str:
        """The customer's language for this message (the KB's when there is no evidence)."""
        return detect_language(text, self.kb.language).language or self.kb.language

    def respond(
        self,
        text: str,
        state: Mapping[str, Any],
        now: float,
        *,
        supports_buttons: bool = True,
        conversation: str = "",
    ) -> Turn:
        """The bot's turn for one customer message."""
        text = text or ""
        lang = self.language(text)
        new: dict[str, Any] = {
            "misses": int(state.get("misses", 0)),
            "matched": list(state.get("matched", [])),
            "slots": dict(state.get("slots", {})),
            "flow": dict(state["flow"]) if isinstance(state.get("flow"), dict) else None,
            "language": lang,
        }
        if wants_person(text):
            return self._handover(new, lang, Reason.ASKED)
        if frustrated(text):
            return self._handover(new, lang, Reason.FRUSTRATION)
        turn = self._flow_turn(new, text, now, lang, supports_buttons)
        if turn is not None:
            return turn
        if greeting_only(text):
            return self._finish(Turn("greeting", (self.persona.greeting(lang),), new, lang))
        return self._faq_turn(new, text, now, lang, supports_buttons, conversation)

    # --- pieces -----------------------------------------------------------------------------

    def _finish(self, turn: Turn) -> Turn:
        """Every text the bot sends goes through the blacklist and the persona's emoji choice."""
        texts = []
        for t in turn.texts:
            out = self.blacklist.scrub(t)
            texts.append(out if self.persona.emoji else strip_emoji(out))
        buttons = tuple(self.blacklist.scrub(b) for b in turn.buttons)
        return Turn(
            turn.outcome,
            tuple(t for t in texts if t.strip()),
            turn.state,
            turn.language,
            buttons,
            turn.faq_key,
            turn.score,
            turn.handover,
        )

    def _handover(self, state: dict[str, Any], lang: str, reason: str) -> Turn:
        state["handed_over"] = reason
        return self._finish(
            Turn("handover", (self.persona.say("handover", lang),), state, lang, handover=reason)
        )

    def _runner(self, flow_id: str, lang: str, supports_buttons: bool) -> FlowRunner | None:
        spec = self.flows.get(flow_id)
        if spec is None:
            return None
        return FlowRunner(spec, language=lang, supports_buttons=supports_buttons)

    def _flow_turn(
        self, state: dict[str, Any], text: str, now: float, lang: str, supports_buttons: bool
    ) -> Turn | None:
        flow = state.get("flow")
        if not flow:
            return None
        runner = self._runner(str(flow.get("flow")), lang, supports_buttons)
        if runner is None:
            state["flow"] = None
            return None
        if flow.get("status") == "done":
            turn = runner.follow_up(flow, text, now)
            if turn is None:
                return None
        elif flow.get("status") == "asking":
            turn = runner.handle(flow, text, now)
        else:
            return None
        state["flow"] = turn.state
        state["slots"].update(turn.state.get("slots", {}))
        if turn.status == "handover":
            return self._handover(state, lang, Reason.FLOW)
        if turn.status in ("cancelled", "expired"):
            state["flow"] = None
        state["misses"] = 0
        return self._finish(
            Turn("flow", (turn.reply,), state, lang, turn.buttons, str(flow.get("flow")))
        )

    def _faq_turn(
        self,
        state: dict[str, Any],
        text: str,
        now: float,
        lang: str,
        supports_buttons: bool,
        conversation: str,
    ) -> Turn:
        match = self.matcher.match(text)
        mentions = self.blacklist.mentions(text)
        if match.declined or match.label is None or match.label not in self.kb.by_id:
            if mentions:
                state["misses"] = 0
                reply = self.persona.say("blacklisted", lang)
                return self._finish(Turn("blacklisted", (reply,), state, lang, score=match.score))
            state["misses"] += 1
            if state["misses"] >= MISSES_BEFORE_HANDOVER:
                return self._handover(state, lang, Reason.NOT_UNDERSTOOD)
            state["guess"] = match.guess
            reply = self.persona.fallback(lang, state["misses"] - 1, conversation)
            return self._finish(Turn("fallback", (reply,), state, lang, score=match.score))
        entry = self.kb.by_id[match.label]
        state["misses"] = 0
        state["matched"] = (state["matched"] + [entry.id])[-5:]
        texts = [entry.answer(lang, self.kb.language)]
        buttons: tuple[str, ...] = ()
        outcome = "answered"
        flow_id = self.entry_flows.get(entry.id)
        runner = self._runner(flow_id, lang, supports_buttons) if flow_id else None
        if runner is not None:
            turn = runner.start(now, text, {"slots": state["slots"]})
            state["flow"] = turn.state
            state["slots"].update(turn.state.get("slots", {}))
            if turn.reply:
                texts.append(turn.reply)
            buttons = turn.buttons
        return self._finish(
            Turn(outcome, tuple(texts), state, lang, buttons, entry.id, match.score)
        )


def summary(state: Mapping[str, Any], kb: KnowledgeBase, reason: str, last_text: str) -> str:
    """A short note for the agent: why, language, what the bot matched and the slots it has."""
    lines = [f"Bot hand-over: {reason}", f"Language: {state.get('language') or kb.language}"]
    matched = [k for k in dict.fromkeys(state.get("matched", [])) if k in kb.by_id]
    if matched:
        lines.append(
            "Matched questions: " + "; ".join(f"{k} ({kb.by_id[k].questions[0]})" for k in matched)
        )
    guess = state.get("guess")
    if guess and guess in kb.by_id and not matched:
        lines.append(f"Closest question (not sure): {guess}")
    slots = state.get("slots") or {}
    if slots:
        lines.append("Slots: " + ", ".join(f"{k}={v}" for k, v in slots.items()))
    last = clean(last_text)[:300]
    if last:
        lines.append(f"Last message: {last}")
    return "\n".join(lines)
