"""Declarative forms with slots: ask, validate, re-ask, cancel, time out; state is a plain dict.

A question is asked at most twice: after a second wrong answer the flow offers its choices again
with a way out (cancel, or a person), and after `max_attempts` wrong answers it hands over.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from tresen.bot.persona import DEFAULT_TEXTS, Persona
from tresen.bot.slots import (
    ANY,
    Choices,
    Reading,
    colour_key,
    has_phrase,
    parse_amount,
    parse_choice,
    parse_colour,
    parse_email,
    parse_height,
    parse_pattern,
    parse_postcode,
    parse_shoe_size,
    parse_size,
    read,
    says_any,
)
from tresen.bot.text import clean

__all__ = [
    "ANY",
    "FlowError",
    "FlowRunner",
    "FlowSpec",
    "FlowTurn",
    "SlotSpec",
    "Vocabulary",
    "load_flows",
    "parse_choice",
    "parse_email",
    "parse_flow",
    "parse_pattern",
    "parse_postcode",
    "parse_shoe_size",
]

SLOT_TYPES = (
    "text",
    "shoe_size",
    "size",
    "amount",
    "height",
    "color",
    "order_number",
    "postcode",
    "email",
    "verification",
    "choice",
    "pattern",
)
ACTIONS = ("find_products", "order_status")
CHOICE_SOURCES = ("category", "brand", "color")
FORMS = ("du", "sie")
DEFAULT_ORDER_PATTERN = r"[A-Z]{0,3}-?\d{5,12}"

CANCEL_WORDS = (
    "abbrechen",
    "abbruch",
    "vergiss es",
    "nicht mehr",
    "lass gut sein",
    "cancel",
    "never mind",
    "nevermind",
    "forget it",
    "quit",
)
RESTART_WORDS = (
    "von vorne",
    "neu starten",
    "neustart",
    "nochmal von vorn",
    "zurucksetzen",
    "restart",
    "start over",
    "start again",
    "reset",
)
FOLLOW_UP_WORDS = 8  # a follow-up to a finished flow ("und in 43?") is a short message

# A flow text: per language, one text or one per form of address ({du: ..., sie: ...}).
Text = Mapping[str, str | Mapping[str, str]]
# The choices worth offering for a slot, given the slots filled so far (brands with helmets).
Narrow = Callable[["SlotSpec", Mapping[str, Any]], tuple[str, ...]]


class FlowError(ValueError):
    """A flow definition is malformed (the message names the flow and slot)."""


@dataclass(frozen=True)
class SlotSpec:
    """One piece of information a flow asks for."""

    name: str
    type: str
    ask: Text
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    error: Text = field(default_factory=dict)
    required: bool = True  # an optional slot is never asked, but read when the customer says it
    choices_from: str | None = None  # "category", "brand" or "color": from the product catalog
    allow_any: bool = False  # "egal" / "any" is an answer (value "*")
    synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # choice → other names
    label: Text = field(default_factory=dict)  # what the slot is called in the hand-over note

    def source(self, flow_id: str) -> str:
        """Where the slot's choices come from: the catalog ("category") or its own list."""
        return self.choices_from or f"{flow_id}.{self.name}"


@dataclass(frozen=True)
class FlowSpec:
    """A form: slots asked in order, a time-out and how many wrong answers before hand-over."""

    id: str
    slots: tuple[SlotSpec, ...]
    timeout_seconds: float = 1800.0
    max_attempts: int = 3
    done: Text = field(default_factory=dict)
    action: str | None = None  # what the bot does with the filled slots (see ACTIONS)
    title: Text = field(default_factory=dict)  # "the product search", for "shall we go back?"


@dataclass(frozen=True)
class FlowTurn:
    """What the bot says next; `state` is what the caller stores with the conversation."""

    status: str  # asking | done | cancelled | expired | handover
    reply: str
    state: dict[str, Any]
    buttons: tuple[str, ...] = ()
    slots: Mapping[str, Any] = field(default_factory=dict)
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Vocabulary:
    """What the flows of a bot can read from any message: order numbers, choices, colours."""

    order_patterns: tuple[str, ...] = ()
    choices: Mapping[str, Choices] = field(default_factory=dict)
    colours: tuple[str, ...] = ()

    @classmethod
    def of(cls, specs: Iterable[FlowSpec]) -> Vocabulary:
        """The vocabulary of these flows (choice lists as the flows hold them)."""
        patterns: dict[str, None] = {}
        choices: dict[str, Choices] = {}
        colours: list[str] = []
        for spec in specs:
            for slot in spec.slots:
                if slot.type == "order_number":
                    patterns[slot.pattern or DEFAULT_ORDER_PATTERN] = None
                if slot.choices:
                    source = slot.source(spec.id)
                    known = choices.get(source)
                    synonyms = {**(known.synonyms if known else {}), **slot.synonyms}
                    choices[source] = Choices(slot.choices, synonyms)
                    if slot.type == "color" or slot.choices_from == "color":
                        colours.extend(slot.choices)
        return cls(tuple(patterns), choices, tuple(dict.fromkeys(colours)))

    def read(self, text: str) -> Reading:
        """Every value the message holds that a flow could use."""
        return read(
            text, order_patterns=self.order_patterns, choices=self.choices, colours=self.colours
        )


# --- one slot -----------------------------------------------------------------------------------


def _without_money(text: str) -> str:
    return re.sub(r"\d+(?:[.,]\d+)?\s*(?:€|euro?\b|eur\b)", " ", text, flags=re.IGNORECASE)


def extract(slot: SlotSpec, text: str, reading: Reading | None = None, *, flow_id: str = "") -> Any:
    """The slot's value in `text` when it answers the slot's question (None when it does not).

    With `reading` (the message read for every slot kind), the value as the message states it
    unasked: only marked numbers, whole choice names, no "egal"."""
    if reading is not None:
        return _read_value(slot, text, reading, flow_id)
    if slot.allow_any and says_any(text):
        return ANY
    if slot.allow_any and slot.choices and clean(text).strip(" .") == str(len(slot.choices) + 1):
        return ANY
    choices = Choices(slot.choices, slot.synonyms)
    parsers: dict[str, Callable[[str], Any]] = {
        "size": lambda t: parse_size(_without_money(t)),
        "amount": parse_amount,
        "height": parse_height,
        "color": lambda t: parse_colour(t, slot.choices) or choices.find(t, loose=True),
        "verification": lambda t: parse_email(t) or parse_postcode(t),
        "shoe_size": parse_shoe_size,
        "postcode": parse_postcode,
        "email": parse_email,
        "order_number": lambda t: parse_pattern(t, slot.pattern or DEFAULT_ORDER_PATTERN),
        "pattern": lambda t: parse_pattern(t, slot.pattern or ".+"),
        "choice": lambda t: choices.find(t, loose=True),
        "text": lambda t: clean(t)[:500] or None,
    }
    return parsers[slot.type](text)


def _read_value(slot: SlotSpec, text: str, reading: Reading, flow_id: str) -> Any:
    kind = slot.type
    if kind == "choice" or (kind == "color" and slot.choices):
        found = reading.choices.get(slot.source(flow_id))
        if found is None and kind == "color" and reading.colour:
            found = next((c for c in slot.choices if colour_key(c) == reading.colour), None)
        return found
    if kind in ("size", "shoe_size"):
        if reading.size is None:
            return None
        if kind == "shoe_size":
            return parse_shoe_size(reading.size)
        return reading.size
    simple: dict[str, Any] = {
        "amount": reading.budget,
        "height": reading.height,
        "color": reading.colour,
        "postcode": reading.postcode,
        "email": reading.email,
        "verification": reading.email or reading.postcode,
    }
    if kind in simple:
        return simple[kind]
    if kind == "order_number":
        return reading.orders.get(slot.pattern or DEFAULT_ORDER_PATTERN)
    if kind == "pattern":
        return parse_pattern(text, slot.pattern or ".+")
    return None  # free text is only taken as the answer to its own question


# --- loading ------------------------------------------------------------------------------------


def _texts(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str) and value.strip():
        return {"de": value, "en": value}
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for lang, text in value.items():
            if isinstance(lang, str) and isinstance(text, str) and text.strip():
                out[lang] = text
            elif (
                isinstance(lang, str)
                and isinstance(text, dict)
                and text
                and set(text) <= set(FORMS)
                and all(isinstance(t, str) and t.strip() for t in text.values())
            ):
                out[lang] = dict(text)
            else:
                break
        else:
            return out
    raise FlowError(
        f"{where}: expected text or a mapping {{de: ..., en: ...}} "
        "(a language may have {du: ..., sie: ...})"
    )


def _synonyms(raw: Any, where: str) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(w, str) for w in v)
        for k, v in raw.items()
    ):
        raise FlowError(f"{where}: 'synonyms' maps a choice to a list of other names")
    return {k: tuple(v) for k, v in raw.items()}


def parse_flow(data: Any, source: str = "flow") -> FlowSpec:
    """Validate one flow definition (parsed YAML)."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise FlowError(f"{source}: a flow needs an 'id' and 'slots'")
    where = f"{source} (flow {data['id']!r})"
    raw_slots = data.get("slots")
    if not isinstance(raw_slots, list) or not raw_slots:
        raise FlowError(f"{where}: 'slots' must be a non-empty list")
    slots: list[SlotSpec] = []
    for n, raw in enumerate(raw_slots, start=1):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise FlowError(f"{where}: slot {n} needs a 'name'")
        at = f"{where}: slot {raw['name']!r}"
        kind = raw.get("type", "text")
        if kind not in SLOT_TYPES:
            raise FlowError(f"{at}: unknown type {kind!r}; one of {', '.join(SLOT_TYPES)}")
        choices = tuple(str(c) for c in raw.get("choices") or ())
        choices_from = raw.get("choices_from")
        if choices_from is not None and choices_from not in CHOICE_SOURCES:
            raise FlowError(f"{at}: 'choices_from' is one of {', '.join(CHOICE_SOURCES)}")
        if kind == "choice" and not choices and choices_from is None:
            raise FlowError(f"{at}: a choice slot needs 'choices' or 'choices_from'")
        pattern = raw.get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise FlowError(f"{at}: bad pattern: {exc}") from exc
        if kind == "pattern" and not pattern:
            raise FlowError(f"{at}: a pattern slot needs 'pattern'")
        slots.append(
            SlotSpec(
                name=raw["name"],
                type=kind,
                ask=_texts(raw.get("ask"), f"{at}: 'ask'"),
                choices=choices,
                pattern=pattern,
                error=_texts(raw["error"], f"{at}: 'error'") if raw.get("error") else {},
                required=bool(raw.get("required", True)),
                choices_from=choices_from,
                allow_any=bool(raw.get("allow_any", False)),
                synonyms=_synonyms(raw.get("synonyms"), at),
                label=_texts(raw["label"], f"{at}: 'label'") if raw.get("label") else {},
            )
        )
    timeout = data.get("timeout_minutes", 30)
    attempts = data.get("max_attempts", 3)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise FlowError(f"{where}: 'timeout_minutes' must be a positive number")
    if not isinstance(attempts, int) or attempts < 1:
        raise FlowError(f"{where}: 'max_attempts' must be a positive whole number")
    done = _texts(data["done"], f"{where}: 'done'") if data.get("done") else {}
    title = _texts(data["title"], f"{where}: 'title'") if data.get("title") else {}
    action = data.get("action")
    if action is not None and action not in ACTIONS:
        raise FlowError(f"{where}: 'action' is one of {', '.join(ACTIONS)}")
    return FlowSpec(data["id"], tuple(slots), float(timeout) * 60.0, attempts, done, action, title)


def load_flows(text: str, source: str = "flows") -> dict[str, FlowSpec]:
    """Parse a YAML document holding `flows: [...]` (or one flow) into specs by id."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FlowError(f"{source}: not valid YAML: {exc}") from exc
    items = data.get("flows") if isinstance(data, dict) and "flows" in data else [data]
    if not isinstance(items, list):
        raise FlowError(f"{source}: 'flows' must be a list")
    specs = [parse_flow(item, source) for item in items]
    return {spec.id: spec for spec in specs}


# --- running ------------------------------------------------------------------------------------


class FlowRunner:
    """Runs one flow for one conversation; every call takes and returns the state dict."""

    def __init__(
        self,
        spec: FlowSpec,
        *,
        language: str = "de",
        supports_buttons: bool = True,
        persona: Persona | None = None,
        vocabulary: Vocabulary | None = None,
        narrow: Narrow | None = None,
    ) -> None:
        self.spec = spec
        self.narrow = narrow
        self.persona = persona or Persona()
        self.language = self.persona.language(language)
        self.supports_buttons = supports_buttons
        self.vocabulary = vocabulary or Vocabulary.of([spec])

    def _t(self, key: str) -> str:
        return self.persona.say(key, self.language)

    def show(self, value: Any) -> str:
        """A slot value as the customer reads it: 42.0 → "42", 42.5 → "42,5" in German."""
        if value == ANY:
            return self._t("any_value")
        if isinstance(value, float):
            text = f"{value:g}"
            return text.replace(".", ",") if self.language == "de" else text
        return str(value)

    def title(self) -> str:
        """What the flow is called in "shall we carry on with …?"."""
        if self.spec.title:
            return self.persona.pick(self.spec.title, self.language)
        return self._t("flow_title")

    def read(self, text: str) -> Reading:
        """The message read for every slot kind this runner's vocabulary knows."""
        return self.vocabulary.read(text)

    def found(self, slots: Mapping[str, Any], text: str, reading: Reading) -> dict[str, Any]:
        """Values for this flow's unfilled slots that the message states of its own accord."""
        found = {}
        for slot in self.spec.slots:
            if slot.name in slots:
                continue
            value = extract(slot, text, reading, flow_id=self.spec.id)
            if value is not None:
                found[slot.name] = value
        return found

    def start(
        self,
        now: float,
        text: str = "",
        state: Mapping[str, Any] | None = None,
        reading: Reading | None = None,
    ) -> FlowTurn:
        """Begin (slots already known may come from `state`, or be read in the opening `text`)."""
        slots = dict((state or {}).get("slots", {}))
        if text:
            slots.update(self.found(slots, text, reading or self.read(text)))
        new = {
            "flow": self.spec.id,
            "slots": slots,
            "attempts": 0,
            "status": "asking",
            "updated_at": now,
        }
        return self._next(new, changed=tuple(slots))

    def expired(self, state: Mapping[str, Any], now: float) -> bool:
        """The customer has not answered for longer than the flow's time-out."""
        return now - float(state.get("updated_at", now)) > self.spec.timeout_seconds

    def pending(self, state: Mapping[str, Any]) -> SlotSpec | None:
        """The slot the flow waits for."""
        return self._pending(state.get("slots", {}))

    def answers(self, state: Mapping[str, Any], text: str, reading: Reading) -> bool:
        """Whether the message is meant for this flow: it answers the question, names a value
        for another of its slots, or cancels, restarts or picks a way out."""
        if self._way_out(state, text) is not None:
            return True
        if has_phrase(text, CANCEL_WORDS) or has_phrase(text, RESTART_WORDS):
            return True
        pending = self.pending(state)
        if pending is not None and extract(pending, text) is not None:
            return True
        return bool(self.found(state.get("slots", {}), text, reading))

    def handle(
        self, state: Mapping[str, Any], text: str, now: float, reading: Reading | None = None
    ) -> FlowTurn:
        """Take the customer's message as the answer to the pending slot (or cancel/restart)."""
        current = dict(state)
        current["slots"] = dict(state.get("slots", {}))
        if self.expired(state, now):
            fresh = {
                "flow": self.spec.id,
                "slots": {},
                "attempts": 0,
                "status": "expired",
                "updated_at": now,
            }
            return FlowTurn("expired", self._t("expired"), fresh)
        way_out = self._way_out(current, text)
        if way_out == "person":
            current["status"] = "handover"
            return FlowTurn("handover", self._t("handover"), current, slots=current["slots"])
        waiting = self._pending(current["slots"])
        says = waiting is not None and waiting.allow_any and extract(waiting, text) == ANY
        if way_out == "cancel" or (not says and has_phrase(text, CANCEL_WORDS)):
            current.update(status="cancelled", updated_at=now)
            return FlowTurn("cancelled", self._t("cancelled"), current, slots=current["slots"])
        if has_phrase(text, RESTART_WORDS):
            return self.start(now)
        current["updated_at"] = now
        if current.get("status") == "done":
            turn = self.follow_up(current, text, now, reading)
            return turn if turn is not None else self._next(current)
        pending = self._pending(current["slots"])
        if pending is None:
            return self._next(current)
        value = extract(self._as_shown(pending, current["slots"]), text)
        if value is None and not clean(text).strip(" .").isdigit():
            value = extract(pending, text)  # named, though not among the choices shown
        # Free text is the whole message: nothing in it counts for another slot too.
        others = (
            {}
            if pending.type == "text"
            else self.found(current["slots"], text, reading or self.read(text))
        )
        others.pop(pending.name, None)
        if value is None and not others:
            return self._wrong(current, pending)
        if value is not None:
            current["slots"][pending.name] = value
        current["slots"].update(others)
        current["attempts"] = 0
        current.pop("way_out", None)
        changed = ((pending.name,) if value is not None else ()) + tuple(others)
        return self._next(current, changed=changed)

    def _wrong(self, state: dict[str, Any], pending: SlotSpec) -> FlowTurn:
        """A wrong answer: ask once more, then offer a way out, then hand over."""
        state["attempts"] = int(state.get("attempts", 0)) + 1
        if state["attempts"] >= self.spec.max_attempts:
            state["status"] = "handover"
            return FlowTurn("handover", self._t("handover"), state, slots=state["slots"])
        if state["attempts"] >= 2:
            state["way_out"] = True
            options = self._options(pending, state["slots"]) or (
                (self._t("button_any"),) if pending.allow_any else ()
            )
            key = "way_out_choice" if options else "way_out_free"
            buttons = (*options, self._t("button_cancel"), self._t("button_person"))
            reply, shown = self._with_options(self._t(key), buttons)
            return FlowTurn("asking", reply, state, shown, state["slots"])
        key = f"invalid_{pending.type}"
        error = (
            self.persona.fill(self.persona.pick(pending.error, self.language))
            if pending.error
            else self._t(key if key in DEFAULT_TEXTS["de"] else "invalid")
        )
        turn = self._ask(state, pending)
        return FlowTurn("asking", f"{error} {turn.reply}", state, turn.buttons, state["slots"])

    def _way_out(self, state: Mapping[str, Any], text: str) -> str | None:
        """ "cancel" or "person" when the customer picks a way out that was offered."""
        if not state.get("way_out"):
            return None
        pending = self.pending(state)
        options = self._options(pending, state.get("slots", {})) if pending else ()
        if pending is not None and pending.allow_any and not options:
            options = (self._t("button_any"),)
        cancel, person = self._t("button_cancel"), self._t("button_person")
        picked = parse_choice(text, (*options, cancel, person))
        return {cancel: "cancel", person: "person"}.get(picked or "")

    def follow_up(
        self, state: Mapping[str, Any], text: str, now: float, reading: Reading | None = None
    ) -> FlowTurn | None:
        """A short follow-up ("und in 42?") changes the slots it names and keeps the rest."""
        words = clean(text).split()
        if not words or len(words) > FOLLOW_UP_WORDS:
            return None
        reading = reading or self.read(text)
        changed: dict[str, Any] = {}
        for slot in self.spec.slots:
            if slot.type == "text":
                continue
            value = extract(slot, text, reading, flow_id=self.spec.id)
            if value is not None and value != state.get("slots", {}).get(slot.name):
                changed[slot.name] = value
        if not changed:
            return None
        new = dict(state)
        new["slots"] = {**state.get("slots", {}), **changed}
        new["updated_at"] = now
        return self._next(new, changed=tuple(changed))

    def resume(self, state: Mapping[str, Any], now: float) -> FlowTurn:
        """Take a paused flow up again where it stopped: its question once more."""
        current = dict(state)
        current["slots"] = dict(state.get("slots", {}))
        current.update(status="asking", updated_at=now)
        current.pop("offered", None)
        return self._next(current)

    def _pending(self, slots: Mapping[str, Any]) -> SlotSpec | None:
        return next((s for s in self.spec.slots if s.required and s.name not in slots), None)

    def _as_shown(self, slot: SlotSpec, slots: Mapping[str, Any]) -> SlotSpec:
        """The slot with the choices the customer was shown (so that "2" means the second)."""
        if not slot.choices or self.narrow is None:
            return slot
        return replace(slot, choices=self._choices(slot, slots))

    def _choices(self, slot: SlotSpec, slots: Mapping[str, Any]) -> tuple[str, ...]:
        narrowed = self.narrow(slot, slots) if self.narrow is not None else ()
        return narrowed or slot.choices

    def _options(self, slot: SlotSpec, slots: Mapping[str, Any]) -> tuple[str, ...]:
        choices = self._choices(slot, slots)
        if choices and slot.allow_any:
            return (*choices, self._t("button_any"))
        return choices

    def _with_options(self, question: str, options: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        if not options or self.supports_buttons:
            return question, options
        lines = "\n".join(f"{n}. {c}" for n, c in enumerate(options, start=1))
        return f"{question}\n{lines}\n{self._t('numbered_hint')}", ()

    def question(self, slot: SlotSpec) -> str:
        """The slot's question in the customer's language and the bot's form of address."""
        return self.persona.fill(self.persona.pick(slot.ask, self.language))

    def _ask(self, state: dict[str, Any], slot: SlotSpec) -> FlowTurn:
        question, buttons = self._with_options(
            self.question(slot), self._options(slot, state["slots"])
        )
        state["pending"] = slot.name
        return FlowTurn("asking", question, state, buttons, state["slots"])

    def _next(self, state: dict[str, Any], changed: tuple[str, ...] = ()) -> FlowTurn:
        slot = self._pending(state["slots"])
        if slot is not None:
            state["status"] = "asking"
            turn = self._ask(state, slot)
            return FlowTurn("asking", turn.reply, state, turn.buttons, state["slots"], changed)
        state["status"] = "done"
        state.pop("pending", None)
        state.pop("way_out", None)
        shown = {k: self.show(v) for k, v in state["slots"].items()}
        reply = (
            self.persona.fill(self.persona.pick(self.spec.done, self.language), **shown)
            if self.spec.done
            else ""
        )
        return FlowTurn("done", reply, state, (), state["slots"], changed)
