"""One bot turn: hand-over wishes and mood, flows with slots, follow-ups, FAQ, fallback; no I/O,
state is a dict.

Every message is read once for every slot the flows know (`Vocabulary.read`). Inside a flow, a
message that is clearly about something else (a confident FAQ match, another flow's order
number, a product) is answered, the flow is paused, and the bot offers to go back to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tresen.bot import handover, mood
from tresen.bot import state as memory
from tresen.bot.blacklist import Blacklist
from tresen.bot.flows import (
    ANY,
    CANCEL_WORDS,
    DEFAULT_ORDER_PATTERN,
    FlowRunner,
    FlowSpec,
    FlowTurn,
    SlotSpec,
    Vocabulary,
)
from tresen.bot.kb import FaqEntry, KnowledgeBase
from tresen.bot.language import detect_language, language_name
from tresen.bot.matcher import Match, Matcher
from tresen.bot.persona import Persona, strip_emoji
from tresen.bot.products import Catalog, Product
from tresen.bot.shop import (
    FOLLOW_UP_FILLER,
    ORDER_STATUSES,
    PRICE_WORDS,
    REFERRING,
    SHORT_MESSAGE,
    Shop,
    size_in,
)
from tresen.bot.slots import Reading, has_phrase, words_of
from tresen.bot.smalltalk import (
    NO_WORDS,
    YES_WORDS,
    greeting_only,
    thanks_only,
    yes_or_no,
)
from tresen.bot.text import clean

__all__ = [
    "MAX_ORDER_ATTEMPTS",
    "Bot",
    "Reason",
    "Turn",
    "frustrated",
    "greeting_only",
    "summary",
    "wants_person",
]


MISSES_BEFORE_HANDOVER = 2
MAX_ORDER_ATTEMPTS = 3  # failed order look-ups per conversation before a person takes over
READ_LIMIT = 4000  # characters; a longer message is for a person (the bot cannot read it whole)
SHORT_LANGUAGE_WORDS = 2  # a message this short does not change the conversation's language
INTERRUPT_WORDS = 4  # a flow's answer that also matches the FAQ is a new question from here on
# How sure the matcher must be (P(answer is right)) to take a message inside a flow as another
# question: "clearly something else", more than the bare threshold for answering at all.
INTERRUPT_SCORE = 0.45
MEDIA_KINDS = frozenset(["media", "image", "audio", "video", "document", "sticker"])
UNREADABLE_KINDS = frozenset(["location", "contacts", "unsupported", "template"])


class Reason:
    """Why the bot handed a conversation over."""

    ASKED = mood.Intent.PERSON
    CALLBACK = mood.Intent.CALLBACK
    COMPLAINT = mood.Intent.COMPLAINT
    LOST_PARCEL = mood.Intent.LOST_PARCEL
    NOT_UNDERSTOOD = "not_understood"
    FRUSTRATION = "frustration"
    INSULT = "insult"
    FLOW = "flow"
    ORDER_VERIFICATION = "order_verification"
    SHOP_UNAVAILABLE = "shop_unavailable"
    MEDIA = "media"
    TOO_LONG = "too_long"
    UNREADABLE = "unreadable"


HANDOVER_TEXTS = {
    Reason.ASKED: "handover",
    Reason.CALLBACK: "handover_callback",
    Reason.COMPLAINT: "handover_sorry",
    Reason.LOST_PARCEL: "handover_sorry",
    Reason.FRUSTRATION: "handover_sorry",
    Reason.INSULT: "handover",
    Reason.NOT_UNDERSTOOD: "handover",
    Reason.MEDIA: "handover_media",
    Reason.UNREADABLE: "handover_media",
    Reason.TOO_LONG: "handover_long",
}


@dataclass(frozen=True)
class Turn:
    """What the bot says to one message, what happened, and the state to store."""

    outcome: str  # answered | fallback | handover | flow | blacklisted | product | order | greeting
    texts: tuple[str, ...]
    state: dict[str, Any]
    language: str
    buttons: tuple[str, ...] = ()
    faq_key: str | None = None
    score: float | None = None
    handover: str | None = None
    action: dict[str, Any] | None = None  # I/O the caller does first (an order look-up)
    facts: dict[str, Any] | None = None  # what the answer says (grounding for LLM phrasing)


def wants_person(text: str) -> bool:
    """The customer asks for a person ("Mitarbeiter", "mit jemandem sprechen", "agent", ...)."""
    return mood.intent(text) in (Reason.ASKED, Reason.CALLBACK)


def frustrated(text: str) -> bool:
    """Signs of frustration: angry words, insults, a row of !!!/???, or a long message in capitals."""
    return mood.mood(text).level > 0


def summary(
    state: Mapping[str, Any], kb: KnowledgeBase, reason: str, last_text: str, **more: Any
) -> str:
    """The hand-over note for the team (see `handover.note`)."""
    return handover.note(state, kb, reason, last_text, **more)


def _says(text: str, words: tuple[str, ...]) -> bool:
    return has_phrase(text, words)


@dataclass
class Bot:
    """A workspace's bot, built once per KB version."""

    kb: KnowledgeBase
    matcher: Matcher
    persona: Persona = field(default_factory=Persona)
    blacklist: Blacklist = field(default_factory=lambda: Blacklist(()))
    flows: Mapping[str, FlowSpec] = field(default_factory=dict)
    entry_flows: Mapping[str, str] = field(default_factory=dict)
    catalog: Catalog = field(default_factory=lambda: Catalog(()))
    vocabulary: Vocabulary = field(init=False)
    shop: Shop = field(init=False)

    def __post_init__(self) -> None:
        self.vocabulary = Vocabulary.of(self.flows.values())
        self.shop = Shop(self.persona, self.catalog)

    def language(self, text: str, before: str | None = None) -> str:
        """The customer's language for this message; a message of one or two words ("43",
        "egal", "broken") keeps the conversation's language (else the KB's)."""
        if before and len(words_of(text)) <= SHORT_LANGUAGE_WORDS:
            return before
        return detect_language(text, before or self.kb.language).language or self.kb.language

    def summary(
        self, state: Mapping[str, Any], reason: str, last_text: str, media: str | None = None
    ) -> str:
        """The hand-over note in the workspace's language, with what the bot found."""
        lang = self.persona.language(self.kb.language)
        statuses = {s: self.persona.say(f"status_{s}", lang) for s in ORDER_STATUSES}
        return handover.note(
            state,
            self.kb,
            reason,
            last_text,
            flows=self.flows.values(),
            catalog=self.catalog,
            language=lang,
            media=media,
            status_names=statuses,
        )

    def respond(
        self,
        text: str,
        state: Mapping[str, Any],
        now: float,
        *,
        supports_buttons: bool = True,
        conversation: str = "",
        kind: str = "text",
    ) -> Turn:
        """The bot's turn for one customer message (`kind`: text, or a media/location kind)."""
        text = text or ""
        before = state.get("language")
        lang = self.language(text, before if isinstance(before, str) else None)
        new = memory.load(state, lang)
        if kind in MEDIA_KINDS:
            new["media"] = kind
            return self._handover(new, lang, Reason.MEDIA)
        if kind in UNREADABLE_KINDS:
            new["media"] = kind
            return self._handover(new, lang, Reason.UNREADABLE)
        if len(clean(text)) > READ_LIMIT:
            return self._handover(new, lang, Reason.TOO_LONG)
        wish = mood.intent(text)
        if wish is not None:
            return self._handover(new, lang, wish)
        feeling = mood.mood(text)
        if feeling.level >= 2:
            return self._handover(
                new, lang, Reason.INSULT if feeling.insult else Reason.FRUSTRATION
            )
        if feeling.level == 1:
            new["mood"] = int(new.get("mood", 0)) + 1
            if new["mood"] >= 2:
                return self._handover(new, lang, Reason.FRUSTRATION)
        reading = self.vocabulary.read(text)
        ctx = _Context(text, reading, now, lang, supports_buttons, conversation, feeling.level > 0)
        for step in (self._paused_turn, self._flow_turn, self._follow_ups):
            turn = step(new, ctx)
            if turn is not None:
                return turn
        if greeting_only(text):
            return self._finish(Turn("greeting", (self.persona.greeting(lang),), new, lang))
        if len(words_of(text)) <= 4 and has_phrase(text, CANCEL_WORDS):
            # "abbrechen" with nothing running: the last search or question is done with.
            new["flow"] = new["paused"] = None
            return self._finish(Turn("flow", (self.persona.say("cancelled", lang),), new, lang))
        if thanks_only(text):
            new["misses"] = 0
            return self._finish(Turn("greeting", (self.persona.say("thanks", lang),), new, lang))
        hit = self.catalog.find(text) if self.catalog else None
        if hit is not None:
            rest = text.replace(hit.product.sku, " ") if hit.by_sku else text
            return self._product_answer(new, hit.product, size_in(rest, reading), lang, reading)
        return self._faq_turn(new, ctx)

    # --- pieces -----------------------------------------------------------------------------

    def _finish(self, turn: Turn) -> Turn:
        """Offer a paused flow once nothing else runs; every text goes through the blacklist
        and the persona's emoji choice."""
        texts = list(turn.texts)
        buttons = turn.buttons
        offer = self._resume_offer(turn)
        if offer is not None:
            texts.append(offer[0])
            buttons = buttons or offer[1]
        cleaned = []
        for t in texts:
            out = self.blacklist.scrub(t)
            cleaned.append(out if self.persona.emoji else strip_emoji(out))
        return Turn(
            turn.outcome,
            tuple(t for t in cleaned if t.strip()),
            turn.state,
            turn.language,
            tuple(self.blacklist.scrub(b) for b in buttons),
            turn.faq_key,
            turn.score,
            turn.handover,
            turn.action,
            turn.facts,
        )

    def _resume_offer(self, turn: Turn) -> tuple[str, tuple[str, ...]] | None:
        state = turn.state
        paused = state.get("paused")
        if not isinstance(paused, dict) or paused.get("offered") or turn.handover or turn.action:
            return None
        running = state.get("flow")
        if isinstance(running, dict) and running.get("status") == "asking":
            return None
        runner = self._runner(str(paused.get("flow")), turn.language, True)
        if runner is None:
            state["paused"] = None
            return None
        paused["offered"] = True
        paused["offer_buttons"] = not turn.buttons  # shown as "1. Ja, weiter" without buttons
        offer = self.persona.say("resume_offer", turn.language, title=runner.title())
        yes = self.persona.say("button_resume", turn.language)
        no = self.persona.say("button_no_resume", turn.language)
        return offer, (yes, no)

    def _handover(
        self, state: dict[str, Any], lang: str, reason: str, before: tuple[str, ...] = ()
    ) -> Turn:
        state["handed_over"] = reason
        text = self.persona.say(HANDOVER_TEXTS.get(reason, "handover"), lang)
        return self._finish(Turn("handover", (*before, text), state, lang, handover=reason))

    def _runner(self, flow_id: str, lang: str, supports_buttons: bool) -> FlowRunner | None:
        spec = self.flows.get(flow_id)
        if spec is None:
            return None
        return FlowRunner(
            spec,
            language=lang,
            supports_buttons=supports_buttons,
            persona=self.persona,
            vocabulary=self.vocabulary,
            narrow=self._narrow if spec.action == "find_products" else None,
        )

    def _narrow(self, slot: SlotSpec, slots: Mapping[str, Any]) -> tuple[str, ...]:
        """The finder offers only brands and colours that exist for what was chosen so far."""
        if slot.choices_from not in ("brand", "color"):
            return slot.choices
        category = slots.get("category")
        fitting = [
            p
            for p in self.catalog.products
            if p.in_stock() and (category in (None, ANY) or p.category == category)
        ]
        names = {
            n.casefold()
            for p in fitting
            for n in ((p.brand,) if slot.choices_from == "brand" else p.colors)
        }
        return tuple(c for c in slot.choices if c.casefold() in names)

    # --- flows ------------------------------------------------------------------------------

    def _paused_turn(self, state: dict[str, Any], ctx: _Context) -> Turn | None:
        """The answer to "shall we carry on with …?": yes, no, or an answer to its question."""
        paused = state.get("paused")
        if not isinstance(paused, dict) or not paused.get("offered"):
            return None
        state["paused"] = None  # the offer holds for one message
        runner = self._runner(str(paused.get("flow")), ctx.lang, ctx.buttons)
        if runner is None or runner.expired(paused, ctx.now):
            return None
        yes = self.persona.say("button_resume", ctx.lang)
        no = self.persona.say("button_no_resume", ctx.lang)
        number = ctx.text.strip(" .)")
        if paused.get("offer_buttons") and number in ("1", "2"):
            ctx = replace(ctx, text=yes if number == "1" else no, _matches=None)
        if _says(ctx.text, (" ".join(words_of(no)), *NO_WORDS)) and len(words_of(ctx.text)) <= 4:
            reply = self.persona.say("resume_declined", ctx.lang)
            return self._finish(Turn("flow", (reply,), state, ctx.lang))
        if _says(ctx.text, (" ".join(words_of(yes)), *YES_WORDS)) and len(words_of(ctx.text)) <= 4:
            turn = runner.resume(paused, ctx.now)
            return self._apply_flow(state, runner, turn, ctx.lang)
        if runner.answers(paused, ctx.text, ctx.reading):
            state["flow"] = runner.resume(paused, ctx.now).state
            turn = runner.handle(state["flow"], ctx.text, ctx.now, ctx.reading)
            return self._apply_flow(state, runner, turn, ctx.lang)
        return None

    def _flow_turn(self, state: dict[str, Any], ctx: _Context) -> Turn | None:
        """A running flow takes the message, unless the message is clearly about something else."""
        flow = state.get("flow")
        if not flow or flow.get("status") != "asking":
            return None
        runner = self._runner(str(flow.get("flow")), ctx.lang, ctx.buttons)
        if runner is None:
            state["flow"] = None
            return None
        if runner.expired(flow, ctx.now):
            state["flow"] = None  # a new message after a long pause starts afresh
            return None
        answers = runner.answers(flow, ctx.text, ctx.reading)
        if not answers or self._other_question(ctx, runner.spec.id):
            turn = self._interruption(state, ctx, runner)
            if turn is not None:
                return turn
        if not answers and ctx.annoyed:
            # An annoyed customer is not asked the same question again: choices and a way out.
            flow["attempts"] = max(int(flow.get("attempts", 0)), 1)
        return self._apply_flow(
            state, runner, runner.handle(flow, ctx.text, ctx.now, ctx.reading), ctx.lang
        )

    def _clear_match(self, ctx: _Context) -> Match | None:
        """The FAQ entry the message is clearly about (sure enough to leave a running flow)."""
        match = ctx.match(self.matcher)
        if match.declined or match.label not in self.kb.by_id:
            return None
        return (
            match
            if match.score >= max(INTERRUPT_SCORE, self.matcher.calibration.threshold)
            else None
        )

    def _other_question(self, ctx: _Context, flow_id: str) -> bool:
        """A longer message that also answers the flow, but the FAQ knows it as another question."""
        if len(words_of(ctx.text)) < INTERRUPT_WORDS:
            return False
        match = self._clear_match(ctx)
        return match is not None and self.entry_flows.get(str(match.label)) != flow_id

    def _interruption(
        self, state: dict[str, Any], ctx: _Context, runner: FlowRunner
    ) -> Turn | None:
        """Answer a message about something else and pause the flow (offering to go back)."""
        flow_id = runner.spec.id
        other = self._order_trigger(ctx.reading, exclude=flow_id)
        if other is not None:
            return self._switch(state, ctx, runner, other, ())
        hit = self.catalog.find(ctx.text) if self.catalog else None
        if hit is not None and runner.spec.action != "find_products":
            memory.pause(state, ctx.now)
            rest = ctx.text.replace(hit.product.sku, " ") if hit.by_sku else ctx.text
            size = size_in(rest, ctx.reading)
            return self._product_answer(state, hit.product, size, ctx.lang, ctx.reading)
        match = self._clear_match(ctx)
        if match is None or match.label is None:
            return None
        entry_flow = self.entry_flows.get(match.label)
        if entry_flow == flow_id:
            return None  # the flow's own topic again: the flow asks its question
        if entry_flow is not None and entry_flow in self.flows:
            answer = self.kb.by_id[match.label].answer(ctx.lang, self.kb.language)
            return self._switch(state, ctx, runner, entry_flow, (answer,), match)
        memory.pause(state, ctx.now)
        return self._answer(state, ctx, match)

    def _switch(
        self,
        state: dict[str, Any],
        ctx: _Context,
        runner: FlowRunner,
        other: str,
        before: tuple[str, ...],
        match: Match | None = None,
    ) -> Turn:
        """Start another flow; the interrupted one waits and is offered when the new one ends."""
        memory.pause(state, ctx.now)
        new_runner = self._runner(other, ctx.lang, ctx.buttons)
        assert new_runner is not None
        turn = new_runner.start(
            ctx.now, ctx.text, {"slots": memory.carried(state, new_runner.spec)}, ctx.reading
        )
        if match is not None and match.label:
            state["matched"] = (state["matched"] + [match.label])[-5:]
        return self._apply_flow(state, new_runner, turn, ctx.lang, before, match)

    def _apply_flow(
        self,
        state: dict[str, Any],
        runner: FlowRunner,
        turn: FlowTurn,
        lang: str,
        before: tuple[str, ...] = (),
        match: Match | None = None,
    ) -> Turn:
        """Store the flow's new state and say what it says (or run its action when done)."""
        state["flow"] = turn.state
        state["slots"].update(turn.state.get("slots", {}))
        if turn.status == "handover":
            return self._handover(state, lang, Reason.FLOW, before)
        if turn.status in ("cancelled", "expired"):
            state["flow"] = None
            state["paused"] = None
        state["misses"] = 0
        acted = self._flow_action(state, runner.spec, turn, lang, before)
        if acted is not None:
            return acted
        texts = (*before, turn.reply)
        if match is not None:
            facts = {"answer": before[0]} if before else None
            return self._finish(
                Turn(
                    "answered",
                    texts,
                    state,
                    lang,
                    turn.buttons,
                    match.label,
                    match.score,
                    facts=facts,
                )
            )
        state["last"] = "flow"
        return self._finish(Turn("flow", texts, state, lang, turn.buttons, runner.spec.id))

    def _flow_action(
        self,
        state: dict[str, Any],
        spec: FlowSpec,
        turn: FlowTurn,
        lang: str,
        before: tuple[str, ...],
    ) -> Turn | None:
        """A finished flow with an action: the product finder's list, or an order look-up."""
        if turn.status != "done" or spec.action is None:
            return None
        slots = turn.state.get("slots", {})
        if spec.action == "find_products":
            texts, facts = self.shop.search(state, slots, lang)
            return self._finish(
                Turn("product", (*before, texts), state, lang, faq_key=spec.id, facts=facts)
            )
        order = next((slots.get(s.name) for s in spec.slots if s.type == "order_number"), None)
        factor = next(
            (
                slots.get(s.name)
                for s in spec.slots
                if s.type in ("verification", "postcode", "email")
            ),
            None,
        )
        if int(state.get("order_failures", 0)) >= MAX_ORDER_ATTEMPTS:
            memory.forget_factor(state, spec)
            return self._handover(state, lang, Reason.ORDER_VERIFICATION, before)
        action = {
            "kind": "order_status",
            "flow": spec.id,
            "order": order,
            "factor": factor,
            "before": list(before),
        }
        return Turn("order", (), state, lang, faq_key=spec.id, action=action)

    def _order_trigger(self, reading: Reading, exclude: str = "") -> str | None:
        """The order-status flow whose order number the message holds."""
        for spec in self.flows.values():
            if spec.id == exclude or spec.action != "order_status":
                continue
            for slot in spec.slots:
                pattern = slot.pattern or DEFAULT_ORDER_PATTERN
                if slot.type == "order_number" and pattern in reading.orders:
                    return spec.id
        return None

    def _finder_flow(self) -> str | None:
        return next((s.id for s in self.flows.values() if s.action == "find_products"), None)

    # --- answers about products and orders --------------------------------------------------

    def order_result(
        self, state: Mapping[str, Any], lang: str, action: Mapping[str, Any], found: Any, now: float
    ) -> Turn:
        """The answer once the caller looked the order up: `found` is an Order, "not_found" or
        "unavailable". The second factor never stays in the state."""
        new = dict(state)
        new["slots"] = dict(state.get("slots", {}))
        spec = self.flows.get(str(action.get("flow")))
        if spec is not None:
            memory.forget_factor(new, spec)
        before = tuple(action.get("before", ()))
        if found == "unavailable":
            reply = self.persona.say("order_unavailable", lang)
            return self._handover(new, lang, Reason.SHOP_UNAVAILABLE, (*before, reply))
        if found == "not_found" or found is None:
            new["order"] = {"number": action.get("order"), "status": None}
            new["order_failures"] = int(new.get("order_failures", 0)) + 1
            if new["order_failures"] >= MAX_ORDER_ATTEMPTS or spec is None:
                return self._handover(new, lang, Reason.ORDER_VERIFICATION, before)
            for s in spec.slots:
                new["slots"].pop(s.name, None)
            runner = self._runner(spec.id, lang, True)
            assert runner is not None
            restart = runner.start(now)
            new["flow"] = restart.state
            reply = self.persona.say("order_not_found", lang)
            return self._finish(
                Turn("order", (*before, reply, restart.reply), new, lang, faq_key=spec.id)
            )
        new["order_failures"] = 0
        text, facts = self.shop.order(new, found.number, found.status, found.tracking_url, lang)
        flow_id = str(action.get("flow"))
        return self._finish(Turn("order", (*before, text), new, lang, faq_key=flow_id, facts=facts))

    def _follow_ups(self, state: dict[str, Any], ctx: _Context) -> Turn | None:
        """A short message about what was just answered: the search, the product, the order."""
        if len(words_of(ctx.text)) > SHORT_MESSAGE:
            return None
        flow = state.get("flow")
        if isinstance(flow, dict) and flow.get("status") == "done":
            runner = self._runner(str(flow.get("flow")), ctx.lang, ctx.buttons)
            if runner is not None:
                turn = runner.follow_up(flow, ctx.text, ctx.now, ctx.reading)
                finder = runner.spec.action == "find_products"
                if turn is not None and finder and "category" in turn.changed:
                    turn = runner.start(ctx.now, ctx.text, {}, ctx.reading)  # a new search
                if turn is not None:
                    return self._apply_flow(state, runner, turn, ctx.lang)
                if finder and ctx.reading.colour:
                    slots = flow.get("slots", {})
                    text, facts = self.shop.search(state, slots, ctx.lang, ctx.reading.colour)
                    return self._said("product", text, state, ctx.lang, facts, runner.spec.id)
        product = self.shop.product_follow_up(state, ctx.text, ctx.reading, ctx.lang)
        if product is not None:
            return self._product_said(state, *product, ctx.lang)
        order = self.shop.order_follow_up(state, ctx.text, ctx.lang)
        if order is not None:
            return self._said("order", order[0], state, ctx.lang, order[1])
        return None

    def _said(
        self,
        outcome: str,
        text: str,
        state: dict[str, Any],
        lang: str,
        facts: dict[str, Any],
        faq_key: str | None = None,
    ) -> Turn:
        return self._finish(Turn(outcome, (text,), state, lang, faq_key=faq_key, facts=facts))

    def _product_said(
        self, state: dict[str, Any], text: str, facts: dict[str, Any], lang: str
    ) -> Turn:
        """A product answer: it is now what "und in 43?" refers to, not a finished flow."""
        state["misses"] = 0
        flow = state.get("flow")
        if flow and flow.get("status") != "asking":
            state["flow"] = None
        return self._said("product", text, state, lang, facts)

    def _product_answer(
        self,
        state: dict[str, Any],
        product: Product,
        size: str | None,
        lang: str,
        reading: Reading | None = None,
    ) -> Turn:
        colour = reading.colour if reading is not None else None
        text, facts = self.shop.product(state, product, size, lang, colour)
        return self._product_said(state, text, facts, lang)

    # --- the knowledge base -----------------------------------------------------------------

    def _faq_turn(self, state: dict[str, Any], ctx: _Context) -> Turn:
        # A bare "ja"/"nein" answers no question the bot asked, and instructions to the bot are
        # no question at all: nothing for the FAQ to match.
        context = self._in_context(state, ctx)
        if yes_or_no(ctx.text) or mood.injection(ctx.text):
            match = _NO_MATCH
        else:
            match = context if context is not None else ctx.match(self.matcher)
        if match.declined or match.label is None or match.label not in self.kb.by_id:
            started = self._start_by_reading(state, ctx)
            if started is not None:
                return started
            if self.blacklist.mentions(ctx.text):
                state["misses"] = 0
                reply = self.persona.say("blacklisted", ctx.lang)
                return self._finish(
                    Turn("blacklisted", (reply,), state, ctx.lang, score=match.score)
                )
            state["misses"] += 1
            if state["misses"] >= MISSES_BEFORE_HANDOVER or int(state.get("mood", 0)) > 0:
                return self._handover(state, ctx.lang, Reason.NOT_UNDERSTOOD)
            state["guess"] = match.guess
            reply = (
                self.persona.say("dont_know", ctx.lang)
                if context is not None  # understood as a follow-up; the answer has no more
                else self.persona.fallback(ctx.lang, state["misses"] - 1, ctx.conversation)
            )
            return self._finish(Turn("fallback", (reply,), state, ctx.lang, score=match.score))
        return self._answer(state, ctx, match)

    def _answer(self, state: dict[str, Any], ctx: _Context, match: Match) -> Turn:
        """The entry's answer, and its flow's first question when the entry starts one."""
        assert match.label is not None
        entry = self.kb.by_id[match.label]
        state["misses"] = 0
        state.pop("product", None)
        state["last"] = "answer"
        # The other questions of the message ("… und wann habt ihr auf?") get their answers too.
        others = ctx.matches(self.matcher)[1:] if match is ctx.match(self.matcher) else []
        more = [
            self.kb.by_id[m.label]
            for m in others
            if m.label is not None and m.label in self.kb.by_id and m.label != entry.id
        ]
        state["matched"] = (state["matched"] + [e.id for e in (entry, *more)])[-5:]
        texts = [self._answer_text(e, ctx.lang) for e in (entry, *more)]
        flow_id = self.entry_flows.get(entry.id)
        spec = self.flows.get(flow_id) if flow_id else None
        angry = int(state.get("mood", 0)) > 0
        if spec is not None and not (angry and spec.action == "find_products"):
            runner = self._runner(spec.id, ctx.lang, ctx.buttons)
            assert runner is not None
            turn = runner.start(
                ctx.now, ctx.text, {"slots": memory.carried(state, spec)}, ctx.reading
            )
            return self._apply_flow(state, runner, turn, ctx.lang, tuple(texts), match)
        facts = {"answer": texts[0]}
        return self._finish(
            Turn("answered", tuple(texts), state, ctx.lang, (), entry.id, match.score, facts=facts)
        )

    def _in_context(self, state: dict[str, Any], ctx: _Context) -> Match | None:
        """A short follow-up that refers to the last answer ("kostet das was?"), read together
        with the question that was answered: another entry when that fits, else the same answer
        (unless a price is asked and it names none: then an honest "don't know"). None when the
        message is no such follow-up."""
        words = set(words_of(ctx.text))
        last = (state.get("matched") or [None])[-1]
        if state.get("last") != "answer" or last not in self.kb.by_id:
            return None
        if not words or len(words) > SHORT_MESSAGE or not words & REFERRING:
            return None
        own_topic = bool(words - FOLLOW_UP_FILLER - PRICE_WORDS - REFERRING)
        if own_topic:
            # It names a topic of its own ("und was kostet der Versand?"): read it alone first.
            alone = ctx.match(self.matcher)
            if not alone.declined:
                return alone
        entry = self.kb.by_id[last]
        match = self.matcher.match(f"{entry.questions[0]} {ctx.text}")
        if not match.declined and match.label != last:
            return match
        if own_topic:
            # Read with the last question it only finds that question again: its own words
            # ("Wie ist das Wetter morgen?") are about something the knowledge base does not know.
            return None
        says_price = bool(_MONEY.search(entry.answer(ctx.lang, self.kb.language)))
        if match.label == last and (says_price or not words & PRICE_WORDS):
            return Match(last, match.score, match.language, False, last)
        return Match(None, match.score, match.language, True, last)

    def _answer_text(self, entry: FaqEntry, lang: str) -> str:
        """The entry's answer in the customer's language, or in the KB's with a line saying so."""
        answer, used = entry.answer_in(lang, self.kb.language)
        if used == lang:
            return answer
        note = self.persona.say("answer_only_in", lang, answer_language=language_name(used, lang))
        return f"{answer}\n{note}"

    def _start_by_reading(self, state: dict[str, Any], ctx: _Context) -> Turn | None:
        """No FAQ entry fits, but the message holds an order number, or names a category to
        search (never a sales flow for an annoyed customer)."""
        flow_id = self._order_trigger(ctx.reading)
        if flow_id is None and "category" in ctx.reading.choices:
            finder = self._finder_flow()
            flow_id = finder if int(state.get("mood", 0)) == 0 else None
        if flow_id is None:
            return None
        runner = self._runner(flow_id, ctx.lang, ctx.buttons)
        assert runner is not None
        turn = runner.start(
            ctx.now, ctx.text, {"slots": memory.carried(state, runner.spec)}, ctx.reading
        )
        return self._apply_flow(state, runner, turn, ctx.lang)


_NO_MATCH = Match(None, 0.0, None, True)
_MONEY = re.compile(r"€|\d|kostenlos|gratis|umsonst|free of charge|\bfree\b", re.IGNORECASE)


@dataclass
class _Context:
    """One message as the turn sees it; the matcher runs at most once."""

    text: str
    reading: Reading
    now: float
    lang: str
    buttons: bool
    conversation: str
    annoyed: bool = False
    _matches: list[Match] | None = None

    def matches(self, matcher: Matcher) -> list[Match]:
        """One match per question of the message, the first question's first."""
        if self._matches is None:
            self._matches = matcher.match_all(self.text)
        return self._matches

    def match(self, matcher: Matcher) -> Match:
        return self.matches(matcher)[0]
