"""The customer's own words in a mail: reply, quoted history and forwarded content told apart.

Works on plain text (HTML parts are turned into text first, their blockquotes prefixed with
"> "). Mail clients mark what they quote in many ways; this module knows the ones of Gmail,
Outlook, Apple Mail, Thunderbird, Android, Yahoo, Hotmail, mail.ru and Yandex in English,
German, French, Dutch, Polish, Danish, Swedish, Norwegian and Russian (plus Spanish and
Italian attributions). A reply written above the quote, below it or between quoted lines keeps
every line the customer wrote; a forwarded mail keeps the forwarded content.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from enum import StrEnum


class ReplyStyle(StrEnum):
    """Where the customer wrote relative to what they quoted."""

    PLAIN = "plain"
    """Nothing quoted."""
    TOP = "top"
    """Above the quote (Gmail, Outlook, Apple Mail, phones)."""
    BOTTOM = "bottom"
    """Below the quote (Thunderbird's bottom posting, mailing-list style)."""
    INTERLEAVED = "interleaved"
    """Between quoted lines, answering point by point."""
    FORWARD = "forward"
    """A forwarded mail, with or without a note of the customer's."""


@dataclass(frozen=True)
class Forwarded:
    """A mail the customer forwarded: its header fields as written and its text."""

    marker: str
    """The client's separator line ("---------- Forwarded message ---------"), or ""."""
    headers: dict[str, str] = field(default_factory=dict)
    """from, date, subject, to, cc: as the forwarding client wrote them."""
    text: str = ""


@dataclass(frozen=True)
class SplitMail:
    """One mail text taken apart."""

    reply: str
    """What the customer wrote (with a forwarded mail: their note and the forwarded content)."""
    quote: str
    """The quoted history that was cut, as written (empty when nothing was quoted)."""
    style: ReplyStyle
    forwarded: Forwarded | None = None


_MAX_LINES = 5000
_MAX_HEADER_CHARS = 320
_MAX_HEADER_LINES = 4
_BLANK_RUNS = re.compile(r"\n{3,}")
_QUOTED = re.compile(r"^[ \t]*>")
_SPACES = re.compile(r"[ \t\u00a0\u200b\u202f]+")

# Words with which mail clients say "wrote" (or "sent") in an attribution line.
_VERB = (
    r"wrote|writes|said|sent|schrieb|geschrieben|gesendet|a\s+écrit|écrit|schreef|geschreven|"
    r"napisał\(a\)|napisała|napisał|pisze|skrev|skrivit|пишет|писал\(а\)|писала|писал|"
    r"написал\(а\)|написала|написал|escribió|ha\s+scritto|kirjoitti|scrisse"
)
_VERB_END = re.compile(rf"(?:^|\s)(?:{_VERB})\s*$", re.IGNORECASE)
_VERB_ANY = re.compile(rf"(?:^|[\s,])(?:{_VERB})(?=[\s:,]|$)", re.IGNORECASE)
# How an attribution starts: a preposition ("On", "Am", "Le", "Op", "Den", "W dniu" ...),
# a date ("2014-10-17 ...", "30.09.2017, ..."), or a day name before a date ("ср, 30 апр.").
_PREPOSITION = re.compile(
    r"^(?:On|Am|Le|Op|Den|El|Il|Em|W\s+dniu|Dnia|Quoting|Zitat\s+von|В)\s", re.IGNORECASE
)
_DATE_FIRST = re.compile(r"^(?:\d|[^\W\d_]{1,12}[.,]{0,2}\s+\d)")
_NAME_FIRST = re.compile(
    r"^[\"'„“«]?[^\W\d_][\w .,'\"„“”«»()&-]{0,60}?\s*(?:<\s*[^\s<>@]+@[^\s<>]+\s*>|"
    r"\(?[^\s<>@()]+@[^\s<>()]+\)?)?\s*$"
)
_EMAIL = re.compile(r"[^\s<>@:]+@[^\s<>@:]+\.[^\s<>@:]+")
_ANGLE_EMAIL_END = re.compile(r"<\s*[^\s<>@]+@[^\s<>]+\s*>\s*:$")
_TIME = re.compile(r"\d{1,2}[:.]\d{2}")
_DIGIT = re.compile(r"\d")

_ORIGINAL = re.compile(
    r"^[-_=*\s]{2,}(?:Original(?:\s+|-)?Message|Ursprüngliche\s+Nachricht|Originalnachricht|"
    r"Message\s+d'origine|Message\s+original|Oorspronkelijk\s+bericht|"
    r"Originalt\s+meddelande|Ursprungligt\s+meddelande|Oprindelig\s+(?:besked|meddelelse)|"
    r"Opprinnelig\s+melding|Wiadomość\s+oryginalna|Oryginalna\s+wiadomość|"
    r"Исходное\s+сообщение|Mensaje\s+original|Messaggio\s+originale)[-_=*\s]*:?$",
    re.IGNORECASE,
)
_FORWARD = re.compile(
    r"^(?:[-_=*\s]{2,}(?:Forwarded\s+message|Forwarded\s+Message|Weitergeleitete\s+Nachricht|"
    r"Message\s+transféré|Message\s+réexpédié|Doorgestuurd\s+bericht|Doorgestuurde\s+bericht|"
    r"Przekazana\s+wiadomość|Wiadomość\s+przekazana|Videresendt\s+(?:meddelelse|besked|melding)|"
    r"Vidarebefordrat\s+(?:meddelande|mejl|brev)|Пересылаемое\s+сообщение|"
    r"Пересланное\s+сообщение|Mensaje\s+reenviado|Messaggio\s+inoltrato)[-_=*\s]*:?|"
    r"(?:Begin\s+forwarded\s+message|Anfang\s+der\s+weitergeleiteten\s+Nachricht|"
    r"Début\s+du\s+message\s+réexpédié|Begin\s+doorgestuurd\s+bericht|"
    r"Początek\s+przekazywanej\s+wiadomości|Start\s+på\s+videresendt\s+(?:besked|meddelelse)|"
    r"Vidarebefordrat\s+brev|Videresendt\s+melding|Начало\s+переадресованного\s+сообщения|"
    r"Inicio\s+del\s+mensaje\s+reenviado|Inizio\s+messaggio\s+inoltrato)\s*:?)$",
    re.IGNORECASE,
)
_RULE = re.compile(r"^[_\-=]{20,}$")
_SIGNATURE = re.compile(r"^(?:--|__|-- ?|—)$")

_FIELDS: dict[str, tuple[str, ...]] = {
    "from": ("from", "von", "de", "van", "od", "fra", "från", "от", "da", "absender"),
    "sent": (
        "sent", "gesendet", "envoyé", "verzonden", "wysłano", "sendt", "skickat", "отправлено",
        "enviado", "inviato",
    ),
    "date": ("date", "datum", "dato", "data", "дата", "fecha"),
    "to": ("to", "an", "à", "a", "aan", "do", "til", "till", "кому", "para", "empfänger"),
    "cc": ("cc", "kopie", "kopia", "копия", "dw"),
    "subject": (
        "subject", "betreff", "objet", "onderwerp", "temat", "emne", "ämne", "тема", "asunto",
        "oggetto",
    ),
}  # fmt: skip
_FIELD_OF = {name: key for key, names in _FIELDS.items() for name in names}
_DIGIT_VALUE = re.compile(r"^\*?\s*[^\W\d_]+\s?\*?\s?:\s?\*?\s*\d")
_FIELD = re.compile(r"^\*?\s*([^\W\d_][^\W\d_ ]{0,11})\s?\*?\s?:\s?\*?(?:\s+(.*))?$")

_DEVICE = re.compile(
    r"^(?:Sent\s+(?:from|with|via)\s|Get\s+Outlook\s+for\s|Download\s+Outlook\s+for\s|"
    r"Von\s+meinem\s.{1,40}\sgesendet|Gesendet\s+(?:von|mit|vom)\s|"
    r"Envoyé\s+(?:de|depuis|avec)\s|Télécharger\s+Outlook\s+pour\s|"
    r"Verzonden\s+(?:vanaf|met|van(?:af)?\s+mijn)\s|Wysłane\s+(?:z|ze)\s|Sendt\s+fra\s|"
    r"Skickat\s+från\s|Отправлено\s+(?:с|из|со)\s|Enviado\s+desde\s|Inviato\s+da\s)"
    r"[^\n]{0,60}$",
    re.IGNORECASE,
)
_FORWARD_SUBJECT = re.compile(
    r"^\s*(?:\[?(?:fwd?|wg|tr|doorst|pd|vs|vb|vl|rv|enc|i|пересл|fw)\s*(?:\[\d+\])?\s*:)",
    re.IGNORECASE,
)

_Q, _T, _B, _H, _F = "quote", "text", "blank", "header", "fields"


def is_forward_subject(subject: str) -> bool:
    """Whether a subject says the mail was forwarded (Fwd:, FW:, WG:, TR:, Doorst:, PD: ...)."""
    return bool(_FORWARD_SUBJECT.match(subject or ""))


def strip_quoted(text: str) -> str:
    """The customer's part of a mail text (see `split_mail`)."""
    return split_mail(text).reply


def split_mail(text: str, *, forwarded_subject: bool = False) -> SplitMail:
    """Take a mail text apart into what the customer wrote and what they quoted or forwarded.

    `forwarded_subject`: the mail's subject says it was forwarded, so a bare header block
    (Outlook's forward has no separator line) starts forwarded content, not a quote.
    """
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    if len(lines) > _MAX_LINES:
        # Customers write at the top or between the first quotes; past this only the rest.
        head = split_mail("\n".join(lines[:_MAX_LINES]), forwarded_subject=forwarded_subject)
        rest = "\n".join(lines[_MAX_LINES:])
        if head.quote and head.forwarded is None:
            return dataclasses.replace(head, quote=f"{head.quote}\n{rest}".strip("\n"))
        return dataclasses.replace(head, reply=f"{head.reply}\n{rest}".strip("\n"))
    plains = [_plain(line) for line in lines]
    kinds = _classify(lines, plains, fields_on_top=not forwarded_subject)
    cut = _tail_start(plains, kinds)
    head_end = cut if cut is not None else len(lines)
    kept, interior = _reply_lines(plains[:head_end], kinds[:head_end])
    reply = _join([lines[i] for i in sorted(kept)])
    quote_lines = [lines[i] for i in range(head_end) if i not in kept]
    tail = lines[cut:] if cut is not None else []
    forwarded = _forwarded(tail, plains[cut:], forwarded_subject) if cut is not None else None
    if forwarded is not None:
        forward_text = _join(tail)
        return SplitMail(
            reply=f"{reply}\n\n{forward_text}" if reply else forward_text,
            quote=_join(quote_lines),
            style=ReplyStyle.FORWARD,
            forwarded=forwarded,
        )
    quote = _join([*quote_lines, *tail])
    return SplitMail(reply=reply, quote=quote, style=_style(kept, kinds, head_end, quote, interior))


def _join(lines: list[str]) -> str:
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n").strip()


def _plain(line: str) -> str:
    return _SPACES.sub(" ", line).strip()


def _classify(lines: list[str], plains: list[str], *, fields_on_top: bool = True) -> list[str]:
    """Each line as quote, blank, text, or part of an attribution or a block of header fields."""
    kinds = [
        _B if not plain else _Q if _QUOTED.match(line) else _T
        for line, plain in zip(lines, plains, strict=True)
    ]
    for i in range(1, len(lines) - 1):
        if kinds[i] == _T and kinds[i - 1] == _Q == kinds[i + 1] and len(lines[i - 1]) >= 65:
            kinds[i] = _Q  # a long quoted line the client wrapped without repeating ">"
    for start, end in _attributions(plains, kinds):
        for i in range(start, end + 1):
            kinds[i] = _H
    first = next((i for i, kind in enumerate(kinds) if kind != _B), None)
    if fields_on_top and first is not None and kinds[first] == _T:
        # Header fields above everything (a client that repeats the mail's own headers).
        for i in range(first, first + _header_block(plains, first)):
            kinds[i] = _F
    return kinds


def _attributions(plains: list[str], kinds: list[str]) -> list[tuple[int, int]]:
    """(first, last) line of every attribution ("On … wrote:") outside quotes."""
    found: list[tuple[int, int]] = []
    taken = -1
    for end, kind in enumerate(kinds):
        if kind != _T:
            continue
        for size in range(1, _MAX_HEADER_LINES + 1):
            start = end - size + 1
            if start <= taken or start < 0 or any(k != _T for k in kinds[start : end + 1]):
                break
            joined = " ".join(plains[start : end + 1])
            if len(joined) > _MAX_HEADER_CHARS:
                break
            if _is_attribution(joined, _next_is_quote(kinds, end)):
                found.append((start, end))
                taken = end
                break
    return found


def _next_is_quote(kinds: list[str], index: int) -> bool:
    for i in range(index + 1, len(kinds)):
        if kinds[i] != _B:
            return kinds[i] == _Q
    return False


def _is_attribution(joined: str, quote_follows: bool) -> bool:
    """Whether one (joined) line is a mail client's attribution of what follows."""
    text = re.sub(r"<\s+", "<", re.sub(r"\s+>", ">", joined))
    dashed = text.startswith("--") and text.rstrip().endswith("--")
    core = text.strip("-").strip() if dashed else text
    colon = core.endswith(":")
    core = core.rstrip(":").rstrip()
    if not core or not (colon or dashed or _PREPOSITION.match(core)):
        return False
    has_time = bool(_TIME.search(core))
    evidence = has_time or "@" in core or bool(_DIGIT.search(core))
    if _VERB_END.search(core):
        before = _VERB_END.sub("", core).strip().rstrip(",")
        if _PREPOSITION.match(core) or _DATE_FIRST.match(core):
            return evidence or quote_follows
        if _NAME_FIRST.match(before) and before:
            # "Jana Müller <jana@example.org> wrote:" or the bare "Jana Müller schrieb:".
            return ("@" in before or has_time) or (quote_follows and len(before.split()) <= 6)
        return False
    if not (colon or dashed):
        return False
    if _VERB_ANY.search(core):
        # The verb in the middle: "Am 1. Dez. 2026 um 10:00 schrieb Shop <s@x.de>:",
        # "Shop <s@x.de> schrieb am So., 23. Juni 2024, 21:08:".
        starts_well = bool(_PREPOSITION.match(core) or _DATE_FIRST.match(core))
        verb_at = _VERB_ANY.search(core)
        before = core[: verb_at.start()].strip() if verb_at else ""
        name_first = "@" in before and bool(_NAME_FIRST.match(before))
        return (starts_well or name_first) and (has_time or "@" in core)
    # No verb at all (Gmail in Russian, Yandex, mail.ru, "2014-10-17 11:28 GMT+03:00 Name <…>:").
    return bool(_ANGLE_EMAIL_END.search(text.rstrip().rstrip("-").rstrip())) and has_time


def _field(plain: str) -> str | None:
    """The normalised name of a header field line ("*Von:* Shop" -> "from"), or None."""
    found = _FIELD.match(plain)
    if found is None:
        return None
    return _FIELD_OF.get(found.group(1).lower())


def _header_block(plains: list[str], start: int, *, strict: bool = False) -> int:
    """How many lines a block of header fields at `start` spans (0 when there is none).

    `strict` (the block does not stand after a blank line): From and two more fields.
    """
    names: list[str] = []
    i = start
    last_field = start
    while i < len(plains) and i < start + 12:
        if not plains[i]:
            break
        name = _field(plains[i])
        if name == "from" and _DIGIT_VALUE.match(plains[i]):
            name = None  # "Von: 10 Uhr / Bis: 12 Uhr" is a time, not a sender
        if name is not None:
            names.append(name)
            last_field = i
        elif i == start or i - last_field > 1:
            break  # a wrapped field value continues on at most one line
        i += 1
    distinct = set(names)
    if len(distinct) < 2 or names[0] == "cc":
        return 0
    if len(distinct) < 3 and (
        "from" not in distinct or not any("@" in line for line in plains[start : i + 1])
    ):
        return 0  # two fields only count with a sender's address among them
    if strict and (len(distinct) < 3 or "from" not in distinct):
        return 0
    return last_field - start + 1


def _tail_start(plains: list[str], kinds: list[str]) -> int | None:
    """Where the quoted or forwarded rest of the mail begins, when it is not marked with ">"."""
    for i, kind in enumerate(kinds):
        plain = plains[i]
        if kind == _H and (i == 0 or kinds[i - 1] != _H):
            if not _next_is_quote(kinds, _header_end(kinds, i)):
                return i
            continue
        if kind != _T:
            continue
        if _ORIGINAL.match(plain) or _FORWARD.match(plain):
            return i
        if _RULE.match(plain):
            following = _first_text(kinds, i + 1)
            if following is not None and _header_block(plains, following):
                return i
            continue
        loose = i == 0 or kinds[i - 1] == _B or bool(_RULE.match(plains[i - 1]))
        if _header_block(plains, i, strict=not loose):
            return i
        if _DEVICE.match(plain) and _first_text(kinds, i + 1, quotes=True) is not None:
            return i
    return None


def _header_end(kinds: list[str], start: int) -> int:
    end = start
    while end + 1 < len(kinds) and kinds[end + 1] == _H:
        end += 1
    return end


def _first_text(kinds: list[str], start: int, *, quotes: bool = False) -> int | None:
    """The first non-blank line from `start` (None when only blank lines follow)."""
    for i in range(start, len(kinds)):
        if kinds[i] != _B:
            return i if quotes or kinds[i] != _Q else None
    return None


def _reply_lines(plains: list[str], kinds: list[str]) -> tuple[set[int], bool]:
    """Indexes of the lines the customer wrote (and quotes between them); whether any were kept."""
    texts = [i for i, kind in enumerate(kinds) if kind == _T]
    while texts and _DEVICE.match(plains[texts[-1]]):
        texts.pop()  # "Sent from my iPhone" below the answer: the phone's line, not the customer's
    if not texts:
        return set(), False
    last = texts[-1]
    # A signature or a mailing list's footer below the last quote is not an answer.
    last_quote = max((i for i, kind in enumerate(kinds) if kind in (_Q, _H)), default=-1)
    if last_quote >= 0 and last > last_quote:
        footer = next((i for i in texts if i > last_quote and _SIGNATURE.match(plains[i])), None)
        if footer is not None:
            earlier = [i for i in texts if i < footer]
            if not earlier:
                return set(), False
            last = earlier[-1]
    first = texts[0]
    kept: set[int] = set()
    interior = False
    for i in range(first, last + 1):
        kind = kinds[i]
        if kind == _Q:
            interior = True
        if kind not in (_H, _F):
            kept.add(i)
    if interior:
        # Answers between quotes: the quoted point above the first answer belongs to it too.
        i = first - 1
        while i >= 0 and kinds[i] in (_Q, _B):
            kept.add(i)
            i -= 1
    return kept, interior


def _style(
    kept: set[int], kinds: list[str], head_end: int, quote: str, interior: bool
) -> ReplyStyle:
    if interior and any(kinds[i] == _Q for i in kept):
        return ReplyStyle.INTERLEAVED
    if not quote:
        return ReplyStyle.PLAIN
    first_kept = min(kept, default=head_end)
    if any(kind in (_Q, _H) for kind in kinds[:first_kept]):
        return ReplyStyle.BOTTOM
    return ReplyStyle.TOP


def _forwarded(tail: list[str], plains: list[str], forwarded_subject: bool) -> Forwarded | None:
    """The forwarded mail at the start of `tail`, or None when the tail is a quote."""
    first = next((i for i, plain in enumerate(plains) if plain), None)
    if first is None:
        return None
    marker = plains[first]
    if _FORWARD.match(marker) or (forwarded_subject and _ORIGINAL.match(marker)):
        start = first + 1
    elif forwarded_subject and (_header_block(plains, first) or _RULE.match(marker)):
        marker, start = "", first + (1 if _RULE.match(marker) else 0)
    else:
        return None
    while start < len(tail) and not plains[start]:
        start += 1
    headers: dict[str, str] = {}
    size = _header_block(plains, start)
    for plain in plains[start : start + size]:
        name = _field(plain)
        found = _FIELD.match(plain)
        if name is not None and found is not None and name not in headers:
            headers[name] = (found.group(2) or "").strip("* ")
    return Forwarded(marker=marker, headers=headers, text=_join(tail[start + size :]))


def reply_payload(split: SplitMail) -> dict[str, object]:
    """What a message payload keeps of a taken-apart mail: the quote, the style, the forward."""
    payload: dict[str, object] = {"reply_style": split.style.value}
    if split.quote:
        payload["quote"] = split.quote
    if split.forwarded is not None:
        payload["forwarded"] = {
            "marker": split.forwarded.marker,
            "headers": dict(split.forwarded.headers),
            "text": split.forwarded.text,
        }
    return payload
