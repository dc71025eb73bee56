"""One bot turn: hand-over words, flows with slots, FAQ match, fallback; no I/O, state is a dict."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tresen.bot.blacklist import Blacklist
from tresen.bot.flows import ANY, FlowRunner, FlowSpec, FlowTurn
from tresen.bot.kb import KnowledgeBase
from tresen.bot.language import detect_language
from tresen.bot.matcher import Matcher
from tresen.bot.persona import Persona, strip_emoji
from tresen.bot.products import Catalog, Product, parse_size, price_text, product_facts
from tresen.bot.text import clean, fold

MISSES_BEFORE_HANDOVER = 2
MAX_ORDER_ATTEMPTS = 3  # failed order look-ups per conversation before a person takes over
ORDER_STATUSES = ("processing", "shipped", "delivered", "cancelled", "returned")
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
    ORDER_VERIFICATION = "order_verification"
    SHOP_UNAVAILABLE = "shop_unavailable"


@dataclass(frozen=True)
class Turn:
    """What the bot says to one message, what happened, and the state to store."""

    outcome: str  # answered | fallback | handover | flow | blacklisted | product | order
    texts: tuple[str, ...]
    state: dict[str, Any]
    language: str
    buttons: tuple[str, ...] = ()
    faq_key: str | None = None
    score: float | None = None
    handover: str | None = None
    action: dict[str, Any] | None = None  # I/O the caller does first (an order look-up)
    facts: dict[str, Any] | None = None  # what the answer says (grounding for LLM phrasing)


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
    catalog: Catalog = field(default_factory=lambda: Catalog(()))

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
        for key in ("product", "products", "order_failures"):
            if state.get(key):
                new[key] = state[key]
        if wants_person(text):
            return self._handover(new, lang, Reason.ASKED)
        if frustrated(text):
            return self._handover(new, lang, Reason.FRUSTRATION)
        turn = self._flow_turn(new, text, now, lang, supports_buttons)
        if turn is not None:
            return turn
        turn = self._product_follow_up(new, text, lang)
        if turn is not None:
            return turn
        if greeting_only(text):
            return self._finish(Turn("greeting", (self.persona.greeting(lang),), new, lang))
        hit = self.catalog.find(text) if self.catalog else None
        if hit is not None:
            rest = text.replace(hit.product.sku, " ") if hit.by_sku else text
            return self._product_answer(new, hit.product, parse_size(rest), lang)
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
            turn.action,
            turn.facts,
        )

    def _handover(
        self, state: dict[str, Any], lang: str, reason: str, before: tuple[str, ...] = ()
    ) -> Turn:
        state["handed_over"] = reason
        texts = (*before, self.persona.say("handover", lang))
        return self._finish(Turn("handover", texts, state, lang, handover=reason))

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
        acted = self._flow_action(state, runner.spec, turn, lang, ())
        if acted is not None:
            return acted
        return self._finish(
            Turn("flow", (turn.reply,), state, lang, turn.buttons, str(flow.get("flow")))
        )

    # --- products and orders --------------------------------------------------------------

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
            texts, facts = self._finder(slots, lang)
            state.pop("product", None)
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
            _forget_factor(state, spec)
            return self._handover(state, lang, Reason.ORDER_VERIFICATION, before)
        action = {
            "kind": "order_status",
            "flow": spec.id,
            "order": order,
            "factor": factor,
            "before": list(before),
        }
        return Turn("order", (), state, lang, faq_key=spec.id, action=action)

    def order_result(
        self, state: Mapping[str, Any], lang: str, action: Mapping[str, Any], found: Any, now: float
    ) -> Turn:
        """The answer once the caller looked the order up: `found` is an Order, "not_found" or
        "unavailable". The second factor never stays in the state."""
        new = dict(state)
        new["slots"] = dict(state.get("slots", {}))
        spec = self.flows.get(str(action.get("flow")))
        if spec is not None:
            _forget_factor(new, spec)
        before = tuple(action.get("before", ()))
        if found == "unavailable":
            reply = self.persona.say("order_unavailable", lang)
            return self._handover(new, lang, Reason.SHOP_UNAVAILABLE, (*before, reply))
        if found == "not_found" or found is None:
            new["order_failures"] = int(new.get("order_failures", 0)) + 1
            if new["order_failures"] >= MAX_ORDER_ATTEMPTS or spec is None:
                return self._handover(new, lang, Reason.ORDER_VERIFICATION, before)
            for s in spec.slots:
                new["slots"].pop(s.name, None)
            restart = FlowRunner(spec, language=lang).start(now)
            new["flow"] = restart.state
            reply = self.persona.say("order_not_found", lang)
            return self._finish(
                Turn("order", (*before, reply, restart.reply), new, lang, faq_key=spec.id)
            )
        status = (
            self.persona.say(f"status_{found.status}", lang)
            if found.status in (ORDER_STATUSES)
            else found.status
        )
        facts = {"order": found.number, "status": status, "tracking": found.tracking_url or ""}
        key = "order_status_tracking" if found.tracking_url else "order_status"
        reply = self.persona.say(key, lang, **facts)
        new["order_failures"] = 0
        return self._finish(
            Turn("order", (*before, reply), new, lang, faq_key=str(action.get("flow")), facts=facts)
        )

    def _finder(self, slots: Mapping[str, Any], lang: str) -> tuple[str, dict[str, Any]]:
        def given(name: str) -> Any:
            value = slots.get(name)
            return None if value in (None, ANY) else value

        budget = given("budget")
        size = given("size")
        found = self.catalog.search(
            category=given("category"),
            size=f"{size:g}" if isinstance(size, float) else size,
            brand=given("brand"),
            budget_cents=round(float(budget) * 100) if budget is not None else None,
        )
        if not found:
            return self.persona.say("finder_none", lang), {"products": []}
        lines = [
            f"{n}. {_display(p)} – {price_text(p.price_cents, lang)}"
            + (f" {p.url}" if p.url else "")
            for n, p in enumerate(found, start=1)
        ]
        facts = {"products": [product_facts(p, lang) for p in found]}
        return self.persona.say("finder_results", lang, list="\n".join(lines)), facts

    def _product_follow_up(self, state: dict[str, Any], text: str, lang: str) -> Turn | None:
        """ "und in 42?" after a product answer: the same product in the new size."""
        product = self.catalog.by_sku(str(state.get("product") or ""))
        if product is None or len(clean(text).split()) > 8:
            return None
        size = parse_size(text)
        if size is None:
            return None
        other = self.catalog.find(text)
        if other is not None and other.product.sku != product.sku:
            return None
        return self._product_answer(state, product, size, lang)

    def _product_answer(
        self, state: dict[str, Any], product: Product, size: str | None, lang: str
    ) -> Turn:
        state["product"] = product.sku
        state["products"] = [
            *[p for p in state.get("products", []) if p != product.sku],
            product.sku,
        ][-3:]
        state["misses"] = 0
        flow = state.get("flow")
        if flow and flow.get("status") != "asking":
            state["flow"] = None  # "und in 43?" now means this product, not the finished flow
        facts = product_facts(product, lang, size)
        facts["product"] = _display(product)
        offered = product.size_key(size) if size and product.sizes else None
        if size and product.sizes:
            state["slots"]["size"] = size
            if offered is None:
                key = "product_size_not_offered"
            else:
                facts["size"] = offered
                key = "product_in_stock" if product.in_stock(offered) else "product_size_sold_out"
        elif not product.in_stock():
            key = "product_sold_out"
        else:
            key = "product_info" if product.sizes else "product_info_no_sizes"
        facts["answer"] = key
        reply = self.persona.say(key, lang, **facts).strip()
        return self._finish(Turn("product", (reply,), state, lang, facts=facts))

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
        state.pop("product", None)
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
            acted = self._flow_action(state, runner.spec, turn, lang, tuple(texts))
            if acted is not None:
                return acted
            if turn.reply:
                texts.append(turn.reply)
            buttons = turn.buttons
        facts = {"answer": texts[0]}
        return self._finish(
            Turn(outcome, tuple(texts), state, lang, buttons, entry.id, match.score, facts=facts)
        )


def _display(product: Product) -> str:
    """The product as the customer reads it: brand and name."""
    if product.brand and product.brand.casefold() not in product.name.casefold():
        return f"{product.brand} {product.name}"
    return product.name


def _forget_factor(state: dict[str, Any], spec: FlowSpec) -> None:
    """Drop the second factor of an order look-up from the stored state."""
    names = [s.name for s in spec.slots if s.type in ("verification", "postcode", "email")]
    flow = state.get("flow")
    for name in names:
        state.get("slots", {}).pop(name, None)
        if isinstance(flow, dict):
            flow.get("slots", {}).pop(name, None)


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
    if state.get("products"):
        lines.append("Products asked about: " + ", ".join(state["products"]))
    slots = state.get("slots") or {}
    if slots:
        lines.append("Slots: " + ", ".join(f"{k}={v}" for k, v in slots.items()))
    last = clean(last_text)[:300]
    if last:
        lines.append(f"Last message: {last}")
    return "\n".join(lines)
