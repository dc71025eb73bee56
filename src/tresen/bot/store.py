"""The knowledge base in the database: import, read, edit; every change bumps the KB version."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.bot.flows import FlowError, parse_flow
from tresen.bot.flowtexts import apply_flow_texts
from tresen.bot.kb import FaqEntry, KnowledgeBase, KnowledgeBaseError, parse_kb
from tresen.bot.persona import DEFAULT_TEXTS as DEFAULT_PERSONA_TEXTS
from tresen.bot.persona import Persona
from tresen.bot.products import Product
from tresen.db.tables import BotConfig, BotFaq, BotProduct
from tresen.db.types import utcnow
from tresen.domain.ids import new_id

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_LANG = re.compile(r"^[a-z]{2}$")
MAX_PHRASINGS = 50
MAX_TEXT = 4000


@dataclass(frozen=True)
class ImportFile:
    """A validated import: the FAQ, flows by id, which entry starts which flow, blacklist terms."""

    kb: KnowledgeBase
    flows: list[dict[str, Any]]
    entry_flows: dict[str, str]
    blacklist: list[str] | None


def parse_import(data: Any, source: str) -> ImportFile:
    """Validate a whole import file (FAQ as in the spec, plus optional flows and blacklist)."""
    kb = parse_kb(data, source)
    raw_flows = data.get("flows") or []
    if not isinstance(raw_flows, list):
        raise KnowledgeBaseError(f"{source}: 'flows' must be a list")
    flow_ids: set[str] = set()
    for n, raw in enumerate(raw_flows, start=1):
        try:
            flow_ids.add(parse_flow(raw, f"{source}: flow {n}").id)
        except FlowError as exc:
            raise KnowledgeBaseError(str(exc)) from exc
    entry_flows: dict[str, str] = {}
    for n, item in enumerate(data["faqs"], start=1):
        flow = item.get("flow")
        if flow is None:
            continue
        if flow not in flow_ids:
            raise KnowledgeBaseError(
                f"{source}: entry {n} (id {item['id']!r}): unknown flow {flow!r}"
            )
        entry_flows[item["id"]] = flow
    blacklist = data.get("blacklist")
    if blacklist is not None and (
        not isinstance(blacklist, list) or not all(isinstance(t, str) for t in blacklist)
    ):
        raise KnowledgeBaseError(f"{source}: 'blacklist' must be a list of terms")
    return ImportFile(kb, list(raw_flows), entry_flows, blacklist)


def read_import(path: str | Path) -> ImportFile:
    """Read and validate an import file; KnowledgeBaseError names the problem."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KnowledgeBaseError(f"{path}: cannot read: {exc}") from exc
    return parse_import_text(raw, str(path))


def parse_import_text(raw: str, source: str) -> ImportFile:
    """An import from its YAML text (an upload or a file); KnowledgeBaseError names the problem."""
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise KnowledgeBaseError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise KnowledgeBaseError(f"{source}: expected a mapping with business, language and faqs")
    return parse_import(data, source)


async def config_for(session: AsyncSession, workspace_id: str) -> BotConfig:
    """The workspace's bot configuration, created (enabled, German) on first use."""
    config = await session.get(BotConfig, workspace_id)
    if config is None:
        config = BotConfig(
            workspace_id=workspace_id,
            enabled=True,
            language="de",
            business="",
            kb_version=0,
            persona={},
            blacklist={},
            flows={},
            updated_at=utcnow(),
        )
        session.add(config)
        await session.flush()
    return config


async def bump(session: AsyncSession, workspace_id: str) -> None:
    """Mark the KB changed: every process rebuilds its matcher on its next message."""
    await config_for(session, workspace_id)
    await session.execute(
        update(BotConfig)
        .where(BotConfig.workspace_id == workspace_id)
        .values(kb_version=BotConfig.kb_version + 1, updated_at=utcnow())
    )


async def import_file(session: AsyncSession, workspace_id: str, parsed: ImportFile) -> int:
    """Replace the workspace's FAQ with the file's entries (in the caller's transaction)."""
    config = await config_for(session, workspace_id)
    config.language = parsed.kb.language
    config.business = parsed.kb.business
    config.flows = {"flows": parsed.flows}
    if parsed.blacklist is not None:
        config.blacklist = {"terms": parsed.blacklist}
    await session.execute(delete(BotFaq).where(BotFaq.workspace_id == workspace_id))
    now = utcnow()
    for position, entry in enumerate(parsed.kb.entries):
        content: dict[str, Any] = {
            "questions": list(entry.questions),
            "answers": dict(entry.answers),
        }
        if entry.id in parsed.entry_flows:
            content["flow"] = parsed.entry_flows[entry.id]
        session.add(
            BotFaq(
                id=new_id(),
                workspace_id=workspace_id,
                key=entry.id,
                content=content,
                position=position,
                created_at=now,
                updated_at=now,
            )
        )
    await session.flush()
    await bump(session, workspace_id)
    return len(parsed.kb.entries)


async def entries(session: AsyncSession, workspace_id: str) -> list[BotFaq]:
    """The workspace's FAQ rows in order."""
    return list(
        await session.scalars(
            select(BotFaq)
            .where(BotFaq.workspace_id == workspace_id)
            .order_by(BotFaq.position, BotFaq.key)
        )
    )


def to_kb(config: BotConfig, rows: list[BotFaq]) -> KnowledgeBase:
    """The rows as the matcher's knowledge base."""
    faq = tuple(
        FaqEntry(
            row.key,
            tuple(row.content.get("questions", [])),
            dict(row.content.get("answers", {})),
        )
        for row in rows
        if row.content.get("questions") and row.content.get("answers")
    )
    return KnowledgeBase(config.business, config.language, faq, {e.id: e for e in faq})


def check_entry(key: str, questions: list[str], answers: dict[str, str]) -> None:
    """Raise ValueError naming what is wrong with an edited entry."""
    if not _KEY.match(key) or key == "oos":
        raise ValueError("the id uses letters, digits, '_', '-' or '.' (and is not 'oos')")
    if not questions:
        raise ValueError("an entry needs at least one phrasing")
    if len(questions) > MAX_PHRASINGS:
        raise ValueError(f"an entry has at most {MAX_PHRASINGS} phrasings")
    if not answers:
        raise ValueError("an entry needs an answer in at least one language")
    for lang, text in answers.items():
        if not _LANG.match(lang):
            raise ValueError(f"{lang!r} is not a two-letter language code")
        if len(text) > MAX_TEXT:
            raise ValueError(f"an answer has at most {MAX_TEXT} characters")
    if any(len(q) > MAX_TEXT for q in questions):
        raise ValueError(f"a phrasing has at most {MAX_TEXT} characters")


async def save_entry(
    session: AsyncSession,
    workspace_id: str,
    entry_id: str | None,
    key: str,
    questions: list[str],
    answers: dict[str, str],
) -> BotFaq:
    """Add (entry_id None) or change an entry; ValueError when invalid or the id is taken."""
    questions = [q.strip() for q in questions if q.strip()]
    answers = {lang.strip(): a.strip() for lang, a in answers.items() if a.strip()}
    key = key.strip()
    check_entry(key, questions, answers)
    taken = await session.scalar(
        select(BotFaq.id).where(BotFaq.workspace_id == workspace_id, BotFaq.key == key)
    )
    if taken is not None and taken != entry_id:
        raise ValueError(f"another entry already has the id {key!r}")
    now = utcnow()
    if entry_id is None:
        position = await session.scalar(
            select(func.coalesce(func.max(BotFaq.position), -1)).where(
                BotFaq.workspace_id == workspace_id
            )
        )
        row = BotFaq(
            id=new_id(),
            workspace_id=workspace_id,
            key=key,
            content={"questions": questions, "answers": answers},
            position=int(position or 0) + 1,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
    else:
        found = await entry(session, workspace_id, entry_id)
        content = {**found.content, "questions": questions, "answers": answers}
        found.key, found.content, found.updated_at = key, content, now
        row = found
    await session.flush()
    await bump(session, workspace_id)
    return row


async def entry(session: AsyncSession, workspace_id: str, entry_id: str) -> BotFaq:
    """One entry of the workspace; LookupError when there is none."""
    row = await session.scalar(
        select(BotFaq).where(BotFaq.workspace_id == workspace_id, BotFaq.id == entry_id)
    )
    if row is None:
        raise LookupError(entry_id)
    return row


async def delete_entry(session: AsyncSession, workspace_id: str, entry_id: str) -> None:
    """Remove an entry."""
    row = await entry(session, workspace_id, entry_id)
    await session.delete(row)
    await session.flush()
    await bump(session, workspace_id)


async def add_phrasing(session: AsyncSession, workspace_id: str, entry_id: str, text: str) -> None:
    """Teach an entry one more phrasing (from the learning loop)."""
    row = await entry(session, workspace_id, entry_id)
    questions = list(row.content.get("questions", []))
    if text.strip() and text.strip() not in questions:
        questions.append(text.strip()[:MAX_TEXT])
    await save_entry(
        session, workspace_id, row.id, row.key, questions, dict(row.content.get("answers", {}))
    )


async def save_settings(
    session: AsyncSession,
    workspace_id: str,
    *,
    enabled: bool,
    name: str,
    form: str,
    emoji: bool,
    blacklist: list[str],
) -> None:
    """The bot on or off, its name, du or Sie, emoji, and the blacklist; ValueError when invalid."""
    name = name.strip()
    if not name or len(name) > 60:
        raise ValueError("the bot's name has 1 to 60 characters")
    if form not in ("du", "sie"):
        raise ValueError("the form of address is 'du' or 'sie'")
    terms = list(dict.fromkeys(t.strip() for t in blacklist if t.strip()))
    if len(terms) > 200 or any(len(t) > 100 for t in terms):
        raise ValueError("at most 200 blacklist terms of at most 100 characters")
    config = await config_for(session, workspace_id)
    config.enabled = enabled
    config.persona = {**(config.persona or {}), "name": name, "form": form, "emoji": emoji}
    config.blacklist = {"terms": terms}
    await session.flush()
    await bump(session, workspace_id)


async def import_products(session: AsyncSession, workspace_id: str, products: list[Product]) -> int:
    """Replace the workspace's product catalog (in the caller's transaction)."""
    await config_for(session, workspace_id)
    await session.execute(delete(BotProduct).where(BotProduct.workspace_id == workspace_id))
    now = utcnow()
    session.add_all(
        BotProduct(
            id=new_id(),
            workspace_id=workspace_id,
            sku=p.sku,
            name=p.name,
            brand=p.brand,
            category=p.category,
            sizes={
                "sizes": list(p.sizes),
                "stock": dict(p.stock_by_size),
                "colors": list(p.colors),
                "color_stock": dict(p.stock_by_color),
            },
            price_cents=p.price_cents,
            stock=p.stock,
            url=p.url,
            updated_at=now,
        )
        for p in products
    )
    await session.flush()
    await bump(session, workspace_id)
    return len(products)


async def products(session: AsyncSession, workspace_id: str) -> list[BotProduct]:
    """The workspace's product rows by article number."""
    return list(
        await session.scalars(
            select(BotProduct)
            .where(BotProduct.workspace_id == workspace_id)
            .order_by(BotProduct.sku)
        )
    )


TEXT_KEYS = tuple(DEFAULT_PERSONA_TEXTS["de"])
MAX_BOT_TEXT = 1000


def persona_text(config: BotConfig | None, language: str, key: str) -> str:
    """The text `key` as the bot says it now (its override or the default), in the current form;
    variants (the "didn't understand" replies) one per line."""
    raw = dict((config.persona if config else None) or {})
    persona = Persona(
        form=str(raw.get("form", "sie")) if raw.get("form") in ("du", "sie") else "sie",
        texts=raw.get("texts") or {},
    )
    return "\n".join(persona._variants(key, language))


async def save_texts(
    session: AsyncSession, workspace_id: str, texts: dict[str, dict[str, str]]
) -> None:
    """Override bot texts per language and key for the current form of address; a text equal
    to the default (or empty) goes back to the default. ValueError names a bad text."""
    config = await config_for(session, workspace_id)
    persona = dict(config.persona or {})
    form = str(persona.get("form")) if persona.get("form") in ("du", "sie") else "sie"
    overrides: dict[str, dict[str, Any]] = {
        lang: dict(v) for lang, v in (persona.get("texts") or {}).items()
    }
    for lang, by_key in texts.items():
        if lang not in DEFAULT_PERSONA_TEXTS:
            raise ValueError(f"{lang!r} is not a bot language")
        for key, text in by_key.items():
            if key not in TEXT_KEYS:
                raise ValueError(f"{key!r} is not a bot text")
            text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
            if key == "fallback":  # the variants, one per line
                lines = [line.strip() for line in text.split("\n") if line.strip()]
            else:
                lines = [text] if text else []
            if sum(len(line) for line in lines) > MAX_BOT_TEXT:
                raise ValueError(f"{lang}/{key}: at most {MAX_BOT_TEXT} characters")
            try:
                for line in lines:
                    line.format_map(_AnyValue())
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{lang}/{key}: braces must name a value like {{name}}") from exc
            default = DEFAULT_PERSONA_TEXTS[lang][key]
            current = overrides.get(lang, {}).get(key)
            if not lines or lines == _form_value(default, form):
                if isinstance(current, dict):
                    current.pop(form, None)
                    if not current:
                        overrides.get(lang, {}).pop(key, None)
                else:
                    overrides.get(lang, {}).pop(key, None)
                continue
            stored: Any = lines if key == "fallback" else lines[0]
            merged = dict(current) if isinstance(current, dict) else {}
            if isinstance(default, dict):
                merged[form] = stored
                overrides.setdefault(lang, {})[key] = merged
            else:
                overrides.setdefault(lang, {})[key] = stored
    persona["texts"] = {lang: v for lang, v in overrides.items() if v}
    config.persona = persona
    await session.flush()
    await bump(session, workspace_id)


async def save_voice(session: AsyncSession, workspace_id: str, *, language: str, form: str) -> None:
    """The bot's main language and its form of address (du or Sie); ValueError when invalid."""
    if language not in ("de", "en"):
        raise ValueError("the language is de or en")
    if form not in ("du", "sie"):
        raise ValueError("the form of address is 'du' or 'sie'")
    config = await config_for(session, workspace_id)
    config.language = language
    config.persona = {**(config.persona or {}), "form": form}
    await session.flush()
    await bump(session, workspace_id)


def current_form(config: BotConfig | None) -> str:
    """The bot's form of address: "du" or "sie" (the default)."""
    form = ((config.persona if config else None) or {}).get("form")
    return str(form) if form in ("du", "sie") else "sie"


async def save_flow_texts(
    session: AsyncSession, workspace_id: str, edits: dict[str, dict[str, str]]
) -> None:
    """Change the flows' questions and texts per language in the current form of address;
    ValueError names a text that cannot be used (and nothing is changed)."""
    config = await config_for(session, workspace_id)
    flows = list((config.flows or {}).get("flows", []))
    changed = apply_flow_texts(flows, current_form(config), edits)
    if changed != flows:
        config.flows = {**(config.flows or {}), "flows": changed}
        await session.flush()
        await bump(session, workspace_id)


def _form_value(value: Any, form: str) -> list[str]:
    if isinstance(value, dict):
        value = value.get(form) or next(iter(value.values()))
    return [value] if isinstance(value, str) else list(value)


class _AnyValue(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""
