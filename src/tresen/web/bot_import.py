"""FAQ and product catalog uploads on the bot page, checked exactly as `tresen bot import-*`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Router, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import Body
from litestar.response import Redirect, Response

from tresen.bot import store
from tresen.bot.kb import KnowledgeBaseError
from tresen.bot.products import CatalogError, parse_catalog_text
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden
from tresen.web import i18n
from tresen.web.audited import record_by
from tresen.web.bot_admin import _overview
from tresen.web.inbox import _runtime, current_actor

MAX_UPLOAD = 2 * 1024 * 1024
KINDS = ("faq", "products")


async def _admin(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_SETTINGS):
        raise Forbidden("only admins edit the bot")
    return actor


def _back(notice: str, **values: str | int) -> Redirect:
    query = "&".join(f"{k}={v}" for k, v in {"import": notice, **values}.items())
    return Redirect(f"/inbox/admin/bot?{query}#import", status_code=303)


def _too_large(_: Request[Any, Any, Any], __: RequestEntityTooLarge) -> Response[Any]:
    return _back("too_large")


@post(
    "/inbox/admin/bot/import",
    include_in_schema=False,
    status_code=200,
    request_max_body_size=MAX_UPLOAD + 64 * 1024,
    exception_handlers={RequestEntityTooLarge: _too_large},
)
async def bot_import(
    request: Request[Any, Any, Any],
    data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
) -> Response[Any]:
    """Replace the FAQ or the product catalog with an uploaded file; a bad file changes nothing."""
    actor = await _admin(request)
    kind = str(data.get("kind", ""))
    upload = data.get("file")
    if kind not in KINDS or not isinstance(upload, UploadFile):
        return _back("no_file")
    content = await upload.read(MAX_UPLOAD + 1)
    if len(content) > MAX_UPLOAD:
        return _back("too_large")
    name = (upload.filename or kind)[:100]
    try:
        text = content.decode("utf-8-sig")
        async with _runtime(request).sessions() as session, session.begin():
            if kind == "faq":
                count = await store.import_file(
                    session, actor.user.workspace_id, store.parse_import_text(text, name)
                )
            else:
                count = await store.import_products(
                    session, actor.user.workspace_id, parse_catalog_text(text, name)
                )
            await record_by(
                session, actor, f"bot.{kind}_imported", "workspace", actor.user.workspace_id
            )
    except UnicodeDecodeError:
        return await _problem(request, actor, i18n.gettext("The file is not UTF-8 text."))
    except (KnowledgeBaseError, CatalogError) as exc:
        return await _problem(request, actor, str(exc))
    return _back(kind, n=count)


async def _problem(request: Request[Any, Any, Any], actor: Actor, detail: str) -> Response[Any]:
    """The bot page naming what is wrong with the file (nothing was imported)."""
    error = i18n.gettext("Nothing was imported: {detail}").format(detail=detail)
    return await _overview(request, actor, error=error, status_code=422)


bot_import_router = Router(path="/", route_handlers=[bot_import])
