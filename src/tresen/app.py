"""Build the ASGI app; its lifespan opens the database and starts the embedded worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router

from tresen import __version__
from tresen.broadcast.dispatch import dispatch_poller
from tresen.broadcast.topics import purge_poller
from tresen.handlers import mailboxes, xmpp
from tresen.handlers.events import HANDLERS as EVENT_HANDLERS
from tresen.handlers.events import dispatch_poller as event_dispatch_poller
from tresen.handlers.mailboxes import poll_mailboxes
from tresen.handlers.media_fetch import DEAD_HOOKS as MEDIA_DEAD_HOOKS
from tresen.handlers.media_fetch import HANDLERS as MEDIA_HANDLERS
from tresen.handlers.process import HANDLERS as PROCESS_HANDLERS
from tresen.handlers.send import DEAD_HOOKS, HANDLERS
from tresen.handlers.worker import Poller, Worker
from tresen.handlers.xmpp import poll_xmpp
from tresen.inbox.routing import HANDLERS as ROUTING_HANDLERS
from tresen.integrations.notifications import HANDLERS as NOTIFY_HANDLERS
from tresen.integrations.notifications import status_poller
from tresen.logs import setup_logging
from tresen.ops.processes import WEB, WEB_AND_WORKER, ProcessIdentity, beat_until
from tresen.ops.startup import prepare_database
from tresen.privacy.retention import poll_retention
from tresen.runtime import Runtime
from tresen.settings import Settings, ensure_secret_key, load_settings
from tresen.web.api import STRICT_REQUEST_BODIES, api_router
from tresen.web.api_notify import STRICT_BODIES as NOTIFY_BODIES
from tresen.web.api_notify import notify_router, refine_schemas
from tresen.web.api_tokens import tokens_router
from tresen.web.audit_admin import audit_router
from tresen.web.bot_admin import bot_admin_router
from tresen.web.bot_import import bot_import_router
from tresen.web.broadcast import broadcast_router
from tresen.web.campaign_drafts import campaign_drafts_router
from tresen.web.canned_admin import canned_router
from tresen.web.channels_admin import channels_router
from tresen.web.contacts import contacts_router
from tresen.web.errors import EXCEPTION_HANDLERS
from tresen.web.health import api_docs, healthz, ping, readyz
from tresen.web.inbox import inbox_router
from tresen.web.links import follow_link, probe_link
from tresen.web.live import stop_event_on_sigterm
from tresen.web.media import media_router
from tresen.web.metrics import metrics_endpoint
from tresen.web.notify_admin import notify_admin_router
from tresen.web.optin import optin_router
from tresen.web.people import people_router
from tresen.web.requestlog import request_ids
from tresen.web.security import security_headers
from tresen.web.settings import settings_router
from tresen.web.setup import setup_router
from tresen.web.subscribe import subscribe_router
from tresen.web.templates_admin import templates_router
from tresen.web.tokens_admin import tokens_admin_router
from tresen.web.topics_admin import topics_admin_router
from tresen.web.webchat import webchat_router
from tresen.web.webhooks import receive_webhook, verify_webhook

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "web" / "static"


CHANNEL_POLLERS: dict[str, Poller] = {mailboxes.POLLER: poll_mailboxes, xmpp.POLLER: poll_xmpp}
"""The worker tasks a channel kind can name as its `poller` (tresen.channels.base); each one
finds the channels of the kinds that name it and idles while there are none."""


def make_worker(runtime: Runtime, **kwargs: Any) -> Worker:
    """A worker with every job handler tresen has."""
    kwargs.setdefault(
        "pollers",
        [
            *CHANNEL_POLLERS.values(),
            event_dispatch_poller,
            poll_retention,
            purge_poller,
            status_poller,
            dispatch_poller,
        ],
    )
    return Worker(
        runtime,
        {
            **HANDLERS,
            **PROCESS_HANDLERS,
            **ROUTING_HANDLERS,
            **MEDIA_HANDLERS,
            **NOTIFY_HANDLERS,
            **EVENT_HANDLERS,
        },
        on_dead={**DEAD_HOOKS, **MEDIA_DEAD_HOOKS},
        **kwargs,
    )


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    embedded_worker: bool = True,
    migrate: bool = True,
) -> Litestar:
    """The tresen web application."""
    settings = ensure_secret_key(settings or load_settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        rt = runtime or Runtime.create(settings)
        app.state.runtime = rt
        with stop_event_on_sigterm() as stopping:
            app.state.stopping = stopping
            try:
                await rt.events.start()
                async with _process_tasks(rt, settings, migrate, embedded_worker):
                    yield
            finally:
                if runtime is None:
                    await rt.close()

    app = Litestar(
        route_handlers=[
            healthz,
            readyz,
            ping,
            inbox_router,
            bot_admin_router,
            bot_import_router,
            create_static_files_router(
                path="/static", directories=[STATIC_DIR], include_in_schema=False
            ),
            api_docs,
            metrics_endpoint,
            verify_webhook,
            receive_webhook,
            api_router,
            notify_router,
            tokens_router,
            optin_router,
            subscribe_router,
            webchat_router,
            settings_router,
            setup_router,
            channels_router,
            templates_router,
            notify_admin_router,
            people_router,
            tokens_admin_router,
            canned_router,
            campaign_drafts_router,
            contacts_router,
            broadcast_router,
            media_router,
            topics_admin_router,
            audit_router,
            follow_link,
            probe_link,
        ],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="tresen API",
            version=__version__,
            path="/api/v1",
            render_plugins=[JsonRenderPlugin()],
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(
                        type="http", scheme="bearer", description="tresen API token"
                    )
                }
            ),
        ),
        request_max_body_size=settings.max_webhook_bytes,
        debug=False,
        logging_config=None,
        csrf_config=CSRFConfig(
            secret=settings.secret_key,
            cookie_name="tresen_csrf",
            cookie_secure=settings.base_url.startswith("https://"),
            cookie_samesite="lax",
            header_name="x-csrftoken",
            exclude=[
                "/webhooks/",
                "/api/",
                "/healthz",
                "/readyz",
                "/metrics",
                "/ping",
                "/static/",
                "^/(chat/|widget\\.js$)",
            ],
        ),
        middleware=[
            request_ids(settings.access_log),
            DefineMiddleware(security_headers, hsts=settings.base_url.startswith("https://")),
        ],
    )
    if runtime is not None:
        app.state.runtime = runtime
    _declare_strict_bodies(app)
    return app


@contextlib.asynccontextmanager
async def _process_tasks(
    rt: Runtime, settings: Settings, migrate: bool, embedded_worker: bool
) -> AsyncIterator[None]:
    """Migrate, report heartbeats, run the embedded worker; stop them in order."""
    beats: asyncio.Task[None] | None = None
    stop_beats = asyncio.Event()
    if migrate:
        await prepare_database(rt.engine, rt.sessions, settings)
        identity = ProcessIdentity(WEB_AND_WORKER if embedded_worker else WEB)
        beats = asyncio.create_task(beat_until(rt.sessions, identity, settings, stop_beats))
    worker = make_worker(rt) if embedded_worker else None
    worker_task = asyncio.create_task(worker.run()) if worker is not None else None
    try:
        yield
    finally:
        if worker is not None and worker_task is not None:
            worker.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker_task, settings.shutdown_seconds + 5)
        stop_beats.set()
        if beats is not None:
            await beats


def _declare_strict_bodies(app: Litestar) -> None:
    """Say in the OpenAPI document that request bodies refuse unknown fields, as they do."""
    schemas = app.openapi_schema.components.schemas or {}
    for struct in (*STRICT_REQUEST_BODIES, *NOTIFY_BODIES):
        if struct.__struct_config__.forbid_unknown_fields and struct.__name__ in schemas:
            schemas[struct.__name__].additional_properties = False
    refine_schemas(schemas)


def app_from_env() -> Litestar:
    """The app as `tresen serve` runs it (uvicorn factory; settings from the environment)."""

    os.umask(0o077)  # each uvicorn worker writes files for this user only

    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)  # a `serve --workers` child starts here
    return create_app(
        settings, embedded_worker=os.environ.get("TRESEN_EMBEDDED_WORKER", "1") != "0"
    )
