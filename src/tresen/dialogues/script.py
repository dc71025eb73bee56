"""The dialogue file: scripted conversations and what the bot's replies must (not) say.

```yaml
faq: demo_faq.yaml            # optional: test this FAQ file (paths relative to this file) ...
products: demo_products.json  # ... and catalog; without them the install's own bot is tested
shop: simulator               # optional: order look-ups go to the built-in fake shop
form: sie                     # optional: du or sie for a file-based bot
dialogues:
  - name: product finder, half done at once
    consent: auto             # default: "Hallo", then "Ja" to the privacy notice; manual: the
    turns:                    #          turns answer the notice themselves
      - say: Ich suche Radschuhe in Größe 43
        expect_all: [Lieblingsmarke]          # every one must be in the reply
        expect_any: [Pedalo, Kettwerk]        # at least one
        expect_none: [Was suchen Sie]         # none
      - tap: Egal                             # press a button of the last reply
      - send: image                           # a photo (audio, video, document, sticker, location)
        silence: true                         # the bot says nothing
```
Texts are compared case-insensitively with white space collapsed; a reply's buttons count as
part of its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MEDIA = ("image", "audio", "video", "document", "sticker", "location")
TURN_KEYS = frozenset(["say", "tap", "send", "expect_all", "expect_any", "expect_none", "silence"])
MAX_DIALOGUES = 1000
MAX_TURNS = 100
MAX_TEXT = 20_000


class ScriptError(ValueError):
    """The dialogue file is malformed (the message names the dialogue, turn and field)."""


@dataclass(frozen=True)
class Turn:
    """What the customer does once, and what the bot's reply must and must not say."""

    say: str | None = None
    tap: str | None = None
    send: str | None = None
    expect_all: tuple[str, ...] = ()
    expect_any: tuple[str, ...] = ()
    expect_none: tuple[str, ...] = ()
    silence: bool = False

    @property
    def checks(self) -> int:
        """How many expectations the turn holds (each kind counts once)."""
        return sum(
            1 for kind in (self.expect_all, self.expect_any, self.expect_none, self.silence) if kind
        )


@dataclass(frozen=True)
class Dialogue:
    """One scripted conversation of one customer."""

    name: str
    turns: tuple[Turn, ...]
    consent: str = "auto"


@dataclass(frozen=True)
class Script:
    """A dialogue file: the dialogues and which bot they talk to."""

    dialogues: tuple[Dialogue, ...]
    faq: Path | None = None
    products: Path | None = None
    shop: str | None = None
    form: str | None = None

    @property
    def expectations(self) -> int:
        """All expectations of all turns."""
        return sum(t.checks for d in self.dialogues for t in d.turns)


def _texts(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
        raise ScriptError(f"{where}: expected a text or a list of texts")
    return tuple(items)


def _turn(raw: Any, where: str) -> Turn:
    if not isinstance(raw, dict):
        raise ScriptError(f"{where}: a turn is a mapping with 'say', 'tap' or 'send'")
    unknown = sorted(set(raw) - TURN_KEYS)
    if unknown:
        raise ScriptError(f"{where}: unknown field {unknown[0]!r}")
    actions = [k for k in ("say", "tap", "send") if raw.get(k) is not None]
    if not actions or (len(actions) > 1 and actions != ["say", "send"]):
        raise ScriptError(f"{where}: give one of 'say', 'tap' or 'send' (with 'say' as caption)")
    for key in ("say", "tap"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise ScriptError(f"{where}: '{key}' is a text of at most {MAX_TEXT} characters")
    send = raw.get("send")
    if send is not None and send not in MEDIA:
        raise ScriptError(f"{where}: 'send' is one of {', '.join(MEDIA)}")
    silence = raw.get("silence", False)
    if not isinstance(silence, bool):
        raise ScriptError(f"{where}: 'silence' is true or false")
    turn = Turn(
        say=raw.get("say"),
        tap=raw.get("tap"),
        send=send,
        expect_all=_texts(raw.get("expect_all"), f"{where}: 'expect_all'"),
        expect_any=_texts(raw.get("expect_any"), f"{where}: 'expect_any'"),
        expect_none=_texts(raw.get("expect_none"), f"{where}: 'expect_none'"),
        silence=silence,
    )
    if silence and (turn.expect_all or turn.expect_any):
        raise ScriptError(f"{where}: a silent turn cannot expect text")
    return turn


def _path(value: Any, base: Path, where: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ScriptError(f"{where}: expected a file path")
    path = (base / value).resolve()
    if not path.is_file():
        raise ScriptError(f"{where}: no such file {path}")
    return path


def parse_script(data: Any, source: str, base: Path = Path(".")) -> Script:
    """Validate a parsed dialogue file."""
    if not isinstance(data, dict) or not isinstance(data.get("dialogues"), list):
        raise ScriptError(f"{source}: expected a mapping with a list 'dialogues'")
    raw_dialogues = data["dialogues"]
    if not raw_dialogues or len(raw_dialogues) > MAX_DIALOGUES:
        raise ScriptError(f"{source}: 'dialogues' holds 1 to {MAX_DIALOGUES} dialogues")
    dialogues = []
    names: set[str] = set()
    for n, raw in enumerate(raw_dialogues, start=1):
        where = f"{source}: dialogue {n}"
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
            raise ScriptError(f"{where}: a dialogue needs a 'name' and 'turns'")
        where = f"{where} ({raw['name']!r})"
        if raw["name"] in names:
            raise ScriptError(f"{where}: the name is used twice")
        names.add(raw["name"])
        turns = raw.get("turns")
        if not isinstance(turns, list) or not turns or len(turns) > MAX_TURNS:
            raise ScriptError(f"{where}: 'turns' holds 1 to {MAX_TURNS} turns")
        consent = raw.get("consent", "auto")
        if consent not in ("auto", "manual"):
            raise ScriptError(f"{where}: 'consent' is auto or manual")
        dialogues.append(
            Dialogue(
                raw["name"],
                tuple(_turn(t, f"{where}: turn {i}") for i, t in enumerate(turns, start=1)),
                consent,
            )
        )
    shop = data.get("shop")
    if shop not in (None, "simulator"):
        raise ScriptError(f"{source}: 'shop' is 'simulator' (or left out)")
    form = data.get("form")
    if form not in (None, "du", "sie"):
        raise ScriptError(f"{source}: 'form' is du or sie")
    faq = _path(data.get("faq"), base, f"{source}: 'faq'")
    products = _path(data.get("products"), base, f"{source}: 'products'")
    if products is not None and faq is None:
        raise ScriptError(f"{source}: 'products' needs 'faq' (a file-based bot)")
    return Script(tuple(dialogues), faq, products, shop, form)


def read_script(path: str | Path) -> Script:
    """Read and validate a dialogue file."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"{path}: cannot read: {exc}") from exc
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ScriptError(f"{path}: not valid YAML: {exc}") from exc
    return parse_script(data, str(path), path.parent)


def normalise(text: str) -> str:
    """A text as expectations compare it: case folded, white space collapsed."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def check(turn: Turn, replies: list[str]) -> list[str]:
    """Why the replies fail the turn's expectations (one reason per failed expectation)."""
    said = normalise("\n".join(replies))
    why = []
    if turn.silence and replies:
        why.append(f"expected silence, the bot said {_quote(replies)}")
    missing = [t for t in turn.expect_all if normalise(t) not in said]
    if missing:
        why.append(f"missing {missing!r} in {_quote(replies)}")
    if turn.expect_any and not any(normalise(t) in said for t in turn.expect_any):
        why.append(f"none of {list(turn.expect_any)!r} in {_quote(replies)}")
    present = [t for t in turn.expect_none if normalise(t) in said]
    if present:
        why.append(f"must not say {present!r}: {_quote(replies)}")
    return why


def _quote(replies: list[str]) -> str:
    if not replies:
        return "(no reply)"
    text = " ⏎ ".join(r.replace("\n", " ⏎ ") for r in replies)
    return repr(text if len(text) <= 400 else text[:399] + "…")
