"""Build the ASGI app; its lifespan opens the database and starts the embedded worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router

from tresen import __version__
from tresen.broadcast.dispatch import dispatch_poller
from tresen.broadcast.topics import purge_poller
from tresen.db.migrate import upgrade_to_head
from tresen.inbox.routing import HANDLERS as ROUTING_HANDLERS
from tresen.integrations.notifications import HANDLERS as NOTIFY_HANDLERS
from tresen.integrations.notifications import status_poller
from tresen.jobs.mailboxes import poll_mailboxes
from tresen.jobs.worker import Worker
from tresen.jobs.xmpp import poll_xmpp
from tresen.media.fetch import DEAD_HOOKS as MEDIA_DEAD_HOOKS
from tresen.media.fetch import HANDLERS as MEDIA_HANDLERS
from tresen.pipeline.process import HANDLERS as PROCESS_HANDLERS
from tresen.pipeline.sender import DEAD_HOOKS, HANDLERS
from tresen.privacy.retention import poll_retention
from tresen.runtime import Runtime
from tresen.settings import Settings, ensure_secret_key, load_settings
from tresen.web.api import STRICT_REQUEST_BODIES, api_router
from tresen.web.api_notify import STRICT_BODIES as NOTIFY_BODIES
from tresen.web.api_notify import notify_router, refine_schemas
from tresen.web.bot_admin import bot_admin_router
from tresen.web.broadcast import broadcast_router
from tresen.web.contacts import contacts_router
from tresen.web.errors import EXCEPTION_HANDLERS
from tresen.web.health import api_docs, healthz, ping
from tresen.web.inbox import inbox_router
from tresen.web.links import follow_link, probe_link
from tresen.web.media import media_router
from tresen.web.metrics import metrics_endpoint
from tresen.web.optin import optin_router
from tresen.web.security import security_headers
from tresen.web.settings import settings_router
from tresen.web.subscribe import subscribe_router
from tresen.web.topics_admin import topics_admin_router
from tresen.web.webchat import webchat_router
from tresen.web.webhooks import receive_webhook, verify_webhook

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "web" / "static"


def make_worker(runtime: Runtime, **kwargs: Any) -> Worker:
    """A worker with every job handler tresen has."""
    kwargs.setdefault(
        "pollers",
        [poll_mailboxes, poll_xmpp, poll_retention, purge_poller, status_poller, dispatch_poller],
    )
    return Worker(
        runtime,
        {
            **HANDLERS,
            **PROCESS_HANDLERS,
            **ROUTING_HANDLERS,
            **MEDIA_HANDLERS,
            **NOTIFY_HANDLERS,
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
        await rt.events.start()
        if migrate:
            await upgrade_to_head(rt.engine)
        worker_task = None
        worker = None
        if embedded_worker:
            worker = make_worker(rt)
            worker_task = asyncio.create_task(worker.run())
        try:
            yield
        finally:
            if worker is not None and worker_task is not None:
                worker.stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker_task, 10)
            if runtime is None:
                await rt.close()

    app = Litestar(
        route_handlers=[
            healthz,
            ping,
            inbox_router,
            bot_admin_router,
            create_static_files_router(
                path="/static", directories=[STATIC_DIR], include_in_schema=False
            ),
            api_docs,
            metrics_endpoint,
            verify_webhook,
            receive_webhook,
            api_router,
            notify_router,
            optin_router,
            subscribe_router,
            webchat_router,
            settings_router,
            contacts_router,
            broadcast_router,
            media_router,
            topics_admin_router,
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
                "/metrics",
                "/ping",
                "/static/",
                "^/(chat/|widget\\.js$)",
            ],
        ),
        middleware=[security_headers],
    )
    if runtime is not None:
        app.state.runtime = runtime
    _declare_strict_bodies(app)
    return app


def _declare_strict_bodies(app: Litestar) -> None:
    """Say in the OpenAPI document that request bodies refuse unknown fields, as they do."""
    schemas = app.openapi_schema.components.schemas or {}
    for struct in (*STRICT_REQUEST_BODIES, *NOTIFY_BODIES):
        if struct.__struct_config__.forbid_unknown_fields and struct.__name__ in schemas:
            schemas[struct.__name__].additional_properties = False
    refine_schemas(schemas)


def app_from_env() -> Litestar:
    """The app as `tresen serve` runs it (uvicorn factory; settings from the environment)."""
    import os

    return create_app(
        load_settings(), embedded_worker=os.environ.get("TRESEN_EMBEDDED_WORKER", "1") != "0"
    )
