"""A workspace's bot, built from its configuration and cached; reset when a conversation ends."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tresen.bot import embedding_store, products, store
from tresen.bot.blacklist import Blacklist
from tresen.bot.engine import Bot
from tresen.bot.flows import FlowError, FlowSpec, parse_flow
from tresen.bot.kb import KnowledgeBase
from tresen.bot.matcher import new_matcher
from tresen.bot.persona import Persona
from tresen.bot.products import Catalog
from tresen.bot.semantic import EmbeddingCache, EncoderUnavailable, shared_encoder
from tresen.db.tables import (
    BotConfig,
    BotConversation,
)
from tresen.db.types import utcnow

log = logging.getLogger(__name__)

CACHE_SIZE = 64
_cache: OrderedDict[str, tuple[int, Bot]] = OrderedDict()
_locks: dict[str, asyncio.Lock] = {}


def _persona(config: BotConfig) -> Persona:
    raw: dict[str, Any] = dict(config.persona or {})
    try:
        return Persona(
            name=str(raw.get("name", "Tresi")),
            business=str(raw.get("business") or config.business),
            form=str(raw.get("form", "sie")),
            emoji=bool(raw.get("emoji", True)),
            default_language=config.language,
            texts=raw.get("texts") or {},
        )
    except ValueError:
        log.warning(
            "bot persona of workspace %s is invalid; using the default", config.workspace_id
        )
        return Persona(business=config.business, default_language=config.language)


def _flows(config: BotConfig, catalog: Catalog) -> dict[str, FlowSpec]:
    specs: dict[str, FlowSpec] = {}
    sources = {
        "category": tuple(catalog.categories()),
        "brand": tuple(catalog.brands()),
        "color": tuple(catalog.colours()),
    }
    for n, raw in enumerate((config.flows or {}).get("flows", []), start=1):
        try:
            spec = parse_flow(raw, f"flow {n}")
        except FlowError:
            log.warning("flow %d of workspace %s is invalid; skipped", n, config.workspace_id)
            continue
        # Choices named by the catalog ("choices_from: category") are its current values.
        slots = tuple(
            replace(s, choices=s.choices + sources[s.choices_from]) if s.choices_from else s
            for s in spec.slots
        )
        specs[spec.id] = replace(spec, slots=slots)
    return specs


def build_bot(
    kb: KnowledgeBase,
    persona: Persona,
    blacklist: Blacklist,
    flows: dict[str, FlowSpec],
    entry_flows: dict[str, str],
    catalog: Catalog | None = None,
    embeddings: EmbeddingCache | None = None,
    backend: str = "default",
) -> Bot:
    """Fit the matcher (with its calibrated "don't know") and put the bot together; the encoder
    is the process's shared one unless `embeddings` (with stored KB embeddings) is given."""
    texts, labels = kb.training_rows()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matcher = new_matcher(backend, kb.language, embeddings).fit(texts, labels)
    return Bot(kb, matcher, persona, blacklist, flows, entry_flows, catalog or Catalog(()))


async def _embeddings(session: AsyncSession, workspace_id: str) -> EmbeddingCache | None:
    """The workspace's stored KB embeddings around the shared encoder; None without an encoder."""
    try:
        encoder = shared_encoder()
    except EncoderUnavailable as exc:
        log.error("sentence encoder unavailable, the bot matches words only: %s", exc)
        return None
    return EmbeddingCache(
        encoder, await embedding_store.load(session, workspace_id, encoder.model_id)
    )


async def bot_for(sessions: async_sessionmaker[AsyncSession], workspace_id: str) -> Bot | None:
    """The workspace's bot, rebuilt only when its KB version changed; None when off or empty."""
    async with sessions() as session:
        config = await session.get(BotConfig, workspace_id)
        if config is None or not config.enabled:
            return None
        version = config.kb_version
        hit = _cache.get(workspace_id)
        if hit is not None and hit[0] == version:
            _cache.move_to_end(workspace_id)
            return hit[1]
        rows = await store.entries(session, workspace_id)
        kb = store.to_kb(config, rows)
        entry_flows = {r.key: str(r.content["flow"]) for r in rows if r.content.get("flow")}
        catalog = products.from_rows(await store.products(session, workspace_id))
        persona, flows = _persona(config), _flows(config, catalog)
        blacklist = Blacklist.of((config.blacklist or {}).get("terms", []))
        if not kb.entries:
            return None
        embeddings = await _embeddings(session, workspace_id)
    lock = _locks.setdefault(workspace_id, asyncio.Lock())
    async with lock:
        hit = _cache.get(workspace_id)
        if hit is not None and hit[0] == version:
            return hit[1]
        started = time.perf_counter()
        bot = await asyncio.to_thread(
            build_bot,
            kb,
            persona,
            blacklist,
            flows,
            entry_flows,
            catalog,
            embeddings,
            "default" if embeddings is not None else "lexical",
        )
        log.info(
            "bot of workspace %s built (KB version %d, %d entries, %d embeddings cached, %d new) "
            "in %.2fs",
            workspace_id,
            version,
            len(kb.entries),
            embeddings.hits if embeddings else 0,
            embeddings.misses if embeddings else 0,
            time.perf_counter() - started,
        )
        if embeddings is not None:
            async with sessions() as session, session.begin():
                await embedding_store.save(
                    session,
                    workspace_id,
                    embeddings.encoder.model_id,
                    embeddings.added,
                    embeddings.keys_of(kb.training_rows()[0]),
                )
        _cache[workspace_id] = (version, bot)
        _cache.move_to_end(workspace_id)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return bot


async def reset(session: AsyncSession, conversation_id: str) -> None:
    """The conversation was resolved: the bot may answer again and starts afresh."""
    await session.execute(
        update(BotConversation)
        .where(BotConversation.conversation_id == conversation_id)
        .values(handed_over_at=None, state={}, updated_at=utcnow())
    )
