"""Declarative forms with slots: ask, validate, re-ask, cancel, time out; state is a plain dict."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from rapidfuzz import fuzz, process

from tresen.bot.text import clean, fold

SLOT_TYPES = (
    "text",
    "shoe_size",
    "size",
    "amount",
    "order_number",
    "postcode",
    "email",
    "verification",
    "choice",
    "pattern",
)
ACTIONS = ("find_products", "order_status")
CHOICE_SOURCES = ("category", "brand")
ANY = "*"
ANY_WORDS = (
    "egal",
    "beliebig",
    "keine",
    "keine rolle",
    "any",
    "no preference",
    "whatever",
    "don't mind",
)
ANY_LABEL = {"de": "Egal", "en": "Any"}
DEFAULT_ORDER_PATTERN = r"[A-Z]{0,3}-?\d{5,12}"

CANCEL_WORDS = {
    "de": ("abbrechen", "abbruch", "vergiss es", "egal", "nicht mehr", "lass gut sein"),
    "en": ("cancel", "never mind", "nevermind", "forget it", "quit"),
}
RESTART_WORDS = {
    "de": ("von vorne", "neu starten", "neustart", "nochmal von vorn", "zurucksetzen"),
    "en": ("restart", "start over", "start again", "reset"),
}
FOLLOW_UP_OPENERS = ("und", "and", "what about", "how about", "auch", "also", "und in", "and in")

DEFAULT_TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "invalid": "Das habe ich leider nicht verstanden.",
        "invalid_shoe_size": "Bitte gib eine Schuhgröße zwischen 35 und 48 an (halbe Größen gehen auch, z. B. 42,5).",
        "invalid_order_number": "Das sieht nicht nach einer Bestellnummer aus. Du findest sie in der Bestellbestätigung.",
        "invalid_postcode": "Bitte gib eine fünfstellige Postleitzahl an, z. B. 70173.",
        "invalid_email": "Bitte gib eine gültige E-Mail-Adresse an, z. B. name@beispiel.de.",
        "invalid_size": "Bitte gib eine Größe an, z. B. 42 oder M.",
        "invalid_amount": "Bitte gib einen Betrag an, z. B. 100 €.",
        "invalid_verification": "Bitte gib die Postleitzahl der Lieferadresse oder die E-Mail-Adresse der Bestellung an.",
        "invalid_choice": "Bitte wähle eine der Möglichkeiten.",
        "numbered_hint": "Antworte einfach mit der Nummer.",
        "cancelled": "Alles klar, ich habe abgebrochen. Wie kann ich sonst helfen?",
        "expired": "Wir hatten eine Weile nichts voneinander gehört, deshalb fange ich neu an.",
        "handover": "Ich hole jemanden aus dem Team dazu.",
    },
    "en": {
        "invalid": "Sorry, I did not get that.",
        "invalid_shoe_size": "Please give a shoe size between 35 and 48 (half sizes are fine, e.g. 42.5).",
        "invalid_order_number": "That does not look like an order number. You find it in your order confirmation.",
        "invalid_postcode": "Please give a five-digit postcode, e.g. 70173.",
        "invalid_email": "Please give a valid e-mail address, e.g. name@example.com.",
        "invalid_size": "Please give a size, e.g. 42 or M.",
        "invalid_amount": "Please give an amount, e.g. 100 €.",
        "invalid_verification": "Please give the postcode of the delivery address or the e-mail address of the order.",
        "invalid_choice": "Please pick one of the options.",
        "numbered_hint": "Just reply with the number.",
        "cancelled": "All right, I have cancelled that. How else can I help?",
        "expired": "It has been a while, so I am starting over.",
        "handover": "I am bringing in someone from the team.",
    },
}


class FlowError(ValueError):
    """A flow definition is malformed (the message names the flow and slot)."""


@dataclass(frozen=True)
class SlotSpec:
    """One piece of information a flow asks for."""

    name: str
    type: str
    ask: Mapping[str, str]
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    error: Mapping[str, str] = field(default_factory=dict)
    required: bool = True
    choices_from: str | None = None  # "category" or "brand": filled from the product catalog
    allow_any: bool = False  # "egal" / "any" is an answer (value "*")


@dataclass(frozen=True)
class FlowSpec:
    """A form: slots asked in order, a time-out and how many wrong answers before hand-over."""

    id: str
    slots: tuple[SlotSpec, ...]
    timeout_seconds: float = 1800.0
    max_attempts: int = 3
    done: Mapping[str, str] = field(default_factory=dict)
    action: str | None = None  # what the bot does with the filled slots (see ACTIONS)


@dataclass(frozen=True)
class FlowTurn:
    """What the bot says next; `state` is what the caller stores with the conversation."""

    status: str  # asking | done | cancelled | expired | handover
    reply: str
    state: dict[str, Any]
    buttons: tuple[str, ...] = ()
    slots: Mapping[str, Any] = field(default_factory=dict)
    changed: tuple[str, ...] = ()


# --- validators: each finds a value inside free text, or returns None ---------------------------

_SHOE = re.compile(
    r"(?<![\d.,])(\d{2})(?:\s*(?:[.,]\s*5|½|1[/⁄]2|einhalb|and a half))?(?![\d.,]*\d)"
)
_POSTCODE = re.compile(r"(?<!\d)(\d{5})(?!\d)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")


def parse_shoe_size(text: str) -> float | None:
    """EU shoe size 35–48, halves allowed: "42", "42,5", "42.5", "42½" → 42.0 / 42.5."""
    for m in _SHOE.finditer(clean(text).replace(" ½", "½")):
        whole = int(m.group(1))
        value = whole + (0.5 if m.group(0) != m.group(1) else 0.0)
        if 35 <= value <= 48:
            return value
    return None


def parse_postcode(text: str) -> str | None:
    """A German postcode (five digits, 01001–99998)."""
    for m in _POSTCODE.finditer(clean(text)):
        if 1001 <= int(m.group(1)) <= 99998:
            return m.group(1)
    return None


def parse_email(text: str) -> str | None:
    """The first e-mail address in the text."""
    m = _EMAIL.search(clean(text))
    return m.group(0) if m else None


def parse_pattern(text: str, pattern: str) -> str | None:
    """The first match of `pattern` in the text (case-insensitive), upper-cased."""
    m = re.search(rf"(?<![A-Za-z0-9])(?:{pattern})(?![A-Za-z0-9])", clean(text), re.IGNORECASE)
    return m.group(0).upper() if m else None


def parse_choice(text: str, choices: tuple[str, ...]) -> str | None:
    """A choice by its number ("2"), its name, or a close spelling of it."""
    raw = fold(clean(text)).strip(" .!?)")
    if raw.isdigit() and 1 <= int(raw) <= len(choices):
        return choices[int(raw) - 1]
    folded = [fold(c) for c in choices]
    if raw in folded:
        return choices[folded.index(raw)]
    for i, c in enumerate(folded):
        if re.search(rf"(?<!\w){re.escape(c)}(?!\w)", raw):
            return choices[i]
    hit = process.extractOne(raw, folded, scorer=fuzz.WRatio, score_cutoff=85)
    return choices[hit[2]] if hit else None


_MONEY = re.compile(
    r"€|\beuro?\b|\beur\b|\bbis\b|\bunter\b|\bunder\b|\bmax|\bbudget", re.IGNORECASE
)
_AMOUNT = re.compile(r"(?<![\d.,])(\d{1,6})(?:[.,](\d{1,2}))?(?![\d])")


def parse_amount(text: str) -> float | None:
    """A money amount ("bis 120 €", "100", "99,90") in whole currency units."""
    m = _AMOUNT.search(clean(text).replace("\u202f", "").replace(" ", " "))
    if not m:
        return None
    value = float(m.group(1)) + (float(f"0.{m.group(2)}") if m.group(2) else 0.0)
    return value if value > 0 else None


def parse_verification(text: str) -> str | None:
    """The second factor of an order lookup: an e-mail address or a postcode."""
    return parse_email(text) or parse_postcode(text)


def _parse_any_size(text: str) -> str | None:
    from tresen.bot.products import parse_size

    return parse_size(text)


def extract(slot: SlotSpec, text: str) -> Any:
    """The slot's value found in `text`, or None."""
    if slot.allow_any and _has_word(text, ANY_WORDS + tuple(ANY_LABEL.values())):
        return ANY
    if slot.allow_any and slot.choices and clean(text).strip(" .") == str(len(slot.choices) + 1):
        return ANY
    parsers: dict[str, Callable[[str], Any]] = {
        "size": _parse_any_size,
        "amount": parse_amount,
        "verification": parse_verification,
        "shoe_size": parse_shoe_size,
        "postcode": parse_postcode,
        "email": parse_email,
        "order_number": lambda t: parse_pattern(t, slot.pattern or DEFAULT_ORDER_PATTERN),
        "pattern": lambda t: parse_pattern(t, slot.pattern or ".+"),
        "choice": lambda t: parse_choice(t, slot.choices),
        "text": lambda t: clean(t)[:500] or None,
    }
    return parsers[slot.type](text)


# --- loading ------------------------------------------------------------------------------------


def _texts(value: Any, where: str) -> dict[str, str]:
    if isinstance(value, str) and value.strip():
        return {"de": value, "en": value}
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in value.items())
    ):
        return dict(value)
    raise FlowError(f"{where}: expected text or a mapping {{de: ..., en: ...}}")


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
            )
        )
    timeout = data.get("timeout_minutes", 30)
    attempts = data.get("max_attempts", 3)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise FlowError(f"{where}: 'timeout_minutes' must be a positive number")
    if not isinstance(attempts, int) or attempts < 1:
        raise FlowError(f"{where}: 'max_attempts' must be a positive whole number")
    done = _texts(data["done"], f"{where}: 'done'") if data.get("done") else {}
    action = data.get("action")
    if action is not None and action not in ACTIONS:
        raise FlowError(f"{where}: 'action' is one of {', '.join(ACTIONS)}")
    return FlowSpec(data["id"], tuple(slots), float(timeout) * 60.0, attempts, done, action)


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


def _show(value: Any, language: str) -> Any:
    """A slot value as the customer reads it: 42.0 → "42", 42.5 → "42,5" in German."""
    if isinstance(value, float):
        text = f"{value:g}"
        return text.replace(".", ",") if language == "de" else text
    return value


def _has_word(text: str, words: tuple[str, ...]) -> bool:
    folded = fold(clean(text))
    return any(re.search(rf"(?<!\w){re.escape(fold(w))}(?!\w)", folded) for w in words)


class FlowRunner:
    """Runs one flow for one conversation; every call takes and returns the state dict."""

    def __init__(
        self,
        spec: FlowSpec,
        *,
        language: str = "de",
        supports_buttons: bool = True,
        texts: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.spec = spec
        self.language = language if language in DEFAULT_TEXTS else "de"
        self.supports_buttons = supports_buttons
        self._texts = {lang: dict(t) for lang, t in DEFAULT_TEXTS.items()}
        for lang, overrides in (texts or {}).items():
            self._texts.setdefault(lang, {}).update(overrides)

    def _t(self, key: str, fallback: str = "invalid") -> str:
        texts = self._texts[self.language]
        return texts.get(key) or texts.get(fallback) or DEFAULT_TEXTS["de"][fallback]

    def _local(self, texts: Mapping[str, str]) -> str:
        return texts.get(self.language) or next(iter(texts.values()), "")

    def start(self, now: float, text: str = "", state: Mapping[str, Any] | None = None) -> FlowTurn:
        """Begin (slots already known may come from `state`, or be found in the opening `text`)."""
        slots = dict((state or {}).get("slots", {}))
        if text:
            for slot in self.spec.slots:
                if slot.name not in slots and slot.type not in {"text", "choice"}:
                    value = extract(slot, text)
                    if value is not None:
                        slots[slot.name] = value
        new = {
            "flow": self.spec.id,
            "slots": slots,
            "attempts": 0,
            "status": "asking",
            "updated_at": now,
        }
        return self._next(new, changed=tuple(slots))

    def handle(self, state: Mapping[str, Any], text: str, now: float) -> FlowTurn:
        """Take the customer's message as the answer to the pending slot (or cancel/restart)."""
        current = dict(state)
        current["slots"] = dict(state.get("slots", {}))
        if now - float(state.get("updated_at", now)) > self.spec.timeout_seconds:
            fresh = {
                "flow": self.spec.id,
                "slots": {},
                "attempts": 0,
                "status": "expired",
                "updated_at": now,
            }
            return FlowTurn("expired", self._t("expired"), fresh)
        waiting = self._pending(current["slots"])
        says_any = waiting is not None and waiting.allow_any and extract(waiting, text) == ANY
        if not says_any and _has_word(text, CANCEL_WORDS["de"] + CANCEL_WORDS["en"]):
            current.update(status="cancelled", updated_at=now)
            return FlowTurn("cancelled", self._t("cancelled"), current, slots=current["slots"])
        if _has_word(text, RESTART_WORDS["de"] + RESTART_WORDS["en"]):
            return self.start(now)
        current["updated_at"] = now
        if current.get("status") == "done":
            turn = self.follow_up(current, text, now)
            return turn if turn is not None else self._next(current)
        pending = self._pending(current["slots"])
        if pending is None:
            return self._next(current)
        value = extract(pending, text)
        if value is None:
            current["attempts"] = int(current.get("attempts", 0)) + 1
            if current["attempts"] >= self.spec.max_attempts:
                current["status"] = "handover"
                return FlowTurn("handover", self._t("handover"), current, slots=current["slots"])
            error = (
                self._local(pending.error) if pending.error else self._t(f"invalid_{pending.type}")
            )
            turn = self._ask(current, pending)
            return FlowTurn(
                "asking", f"{error} {turn.reply}", current, turn.buttons, current["slots"]
            )
        current["slots"][pending.name] = value
        current["attempts"] = 0
        return self._next(current, changed=(pending.name,))

    def follow_up(self, state: Mapping[str, Any], text: str, now: float) -> FlowTurn | None:
        """A short follow-up ("und in 42?") changes the slots it names and keeps the rest."""
        words = clean(text).split()
        if not words or len(words) > 8:
            return None
        changed: dict[str, Any] = {}
        money = bool(_MONEY.search(clean(text)))
        for slot in self.spec.slots:
            if slot.type == "text" or (slot.type == "amount") != money:
                continue  # "und in 43?" is a size, "und bis 80 €?" a budget
            value = extract(slot, text)
            if value is not None and value != state.get("slots", {}).get(slot.name):
                changed[slot.name] = value
        if not changed:
            return None
        new = dict(state)
        new["slots"] = {**state.get("slots", {}), **changed}
        new["updated_at"] = now
        return self._next(new, changed=tuple(changed))

    def _pending(self, slots: Mapping[str, Any]) -> SlotSpec | None:
        return next((s for s in self.spec.slots if s.required and s.name not in slots), None)

    def _ask(self, state: dict[str, Any], slot: SlotSpec) -> FlowTurn:
        question = self._local(slot.ask)
        buttons: tuple[str, ...] = ()
        choices = slot.choices
        if choices and slot.allow_any:
            choices = (*choices, ANY_LABEL.get(self.language, ANY_LABEL["en"]))
        if choices:
            if self.supports_buttons:
                buttons = choices
            else:
                options = "\n".join(f"{n}. {c}" for n, c in enumerate(choices, start=1))
                question = f"{question}\n{options}\n{self._t('numbered_hint')}"
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
        shown = {k: _show(v, self.language) for k, v in state["slots"].items()}
        reply = self._local(self.spec.done).format(**shown) if self.spec.done else ""
        return FlowTurn("done", reply, state, (), state["slots"], changed)
