"""The flows' own texts (questions, hints, done texts, titles) as the bot texts page edits them:
per language, in the bot's current form of address."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tresen.bot.flows import FlowError, parse_flow

FLOW_FIELDS = ("title", "done")
SLOT_FIELDS = ("ask", "error")
MAX_FLOW_TEXT = 1000
SEPARATOR = "|"


@dataclass(frozen=True)
class FlowText:
    """One editable text of a flow; `key` names it in the form ("flow|id|slot|field")."""

    key: str
    flow: str
    slot: str
    field: str
    values: dict[str, str]


def _shown(value: Any, language: str, form: str) -> str:
    """The text of `language` in `form` as the bot says it."""
    if not isinstance(value, Mapping):
        return str(value or "")
    text = value.get(language)
    if isinstance(text, Mapping):
        return str(text.get(form) or next(iter(text.values()), ""))
    return str(text or "")


def _key(flow: str, slot: str, field: str) -> str:
    return SEPARATOR.join(("flow", flow, slot, field))


def flow_texts(
    flows: Iterable[Mapping[str, Any]], form: str, languages: Iterable[str]
) -> list[FlowText]:
    """Every text of every flow, as the bot says it in `form`."""
    languages = list(languages)
    out: list[FlowText] = []
    for flow in flows:
        flow_id = str(flow.get("id", ""))
        if not flow_id or SEPARATOR in flow_id:
            continue
        for field in FLOW_FIELDS:
            values = {lang: _shown(flow.get(field), lang, form) for lang in languages}
            out.append(FlowText(_key(flow_id, "", field), flow_id, "", field, values))
        for slot in flow.get("slots") or []:
            name = str(slot.get("name", ""))
            if not name or SEPARATOR in name:
                continue
            for field in SLOT_FIELDS:
                values = {lang: _shown(slot.get(field), lang, form) for lang in languages}
                out.append(FlowText(_key(flow_id, name, field), flow_id, name, field, values))
    return out


def _set(holder: dict[str, Any], field: str, language: str, form: str, text: str) -> None:
    """Put `text` in as the `form` text of `language`; an empty text removes it."""
    value = holder.get(field)
    value = {"de": value, "en": value} if isinstance(value, str) else dict(value or {})
    current = value.get(language)
    if not text:
        if isinstance(current, Mapping):
            rest = {f: t for f, t in current.items() if f != form}
            value[language] = rest
            if not rest:
                value.pop(language)
        else:
            value.pop(language, None)
    elif isinstance(current, Mapping):
        value[language] = {**current, form: text}
    elif isinstance(current, str) and current != text:
        other = "du" if form == "sie" else "sie"
        value[language] = {form: text, other: current}  # the other form keeps its text
    else:
        value[language] = {form: text}
    if value:
        holder[field] = value
    else:
        holder.pop(field, None)


def apply_flow_texts(
    flows: list[dict[str, Any]], form: str, edits: Mapping[str, Mapping[str, str]]
) -> list[dict[str, Any]]:
    """The flows with the edited texts (language → key → text) in `form`; a text equal to what the
    bot says now is left alone. ValueError names a text that cannot be used."""
    changed = copy.deepcopy(flows)
    by_id = {str(f.get("id")): f for f in changed}
    current = {t.key: t for t in flow_texts(flows, form, {lang for lang in edits})}
    for language, by_key in edits.items():
        for key, raw in by_key.items():
            known = current.get(key)
            if known is None:
                raise ValueError(f"{key!r} is not a text of a flow")
            text = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
            if text == known.values.get(language, ""):
                continue
            where = f"{language}/{known.flow}" + (f"/{known.slot}" if known.slot else "")
            if not text and known.field == "ask":
                raise ValueError(f"{where}: the question ('ask') cannot be empty")
            if len(text) > MAX_FLOW_TEXT:
                raise ValueError(f"{where}: at most {MAX_FLOW_TEXT} characters")
            try:
                text.format_map(_AnyValue())
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{where}: braces must name a value like {{size}}") from exc
            flow = by_id[known.flow]
            holder = (
                flow
                if not known.slot
                else next(s for s in flow["slots"] if str(s.get("name")) == known.slot)
            )
            _set(holder, known.field, language, form, text)
    for n, flow in enumerate(changed, start=1):
        try:
            parse_flow(flow, f"flow {n}")
        except FlowError as exc:
            raise ValueError(str(exc)) from exc
    return changed


class _AnyValue(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""
