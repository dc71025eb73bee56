"""python-telegram-bot drives the Telegram simulator: what a real client sends, it accepts.

`Bot(token, base_url=…, base_file_url=…)` points the library at the simulator; the assertions
are on the objects the library parsed from the answers and on the simulator's ledger.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar, Request, post
from litestar.response import Response
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
    WebAppInfo,
)
from telegram.constants import ChatAction
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, RetryAfter

from tresen.sim.server import serve_asgi
from tresen.sim.telegram import TelegramSimConfig, TelegramSimulator, run_telegram_simulator

CHAT = 4711
PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200) + b"\xff\xd9"


@dataclass
class Receiver:
    """Records the updates posted to the webhook."""

    url: str = ""
    updates: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def next_update(self, bot: Bot) -> Update:
        """Wait for the next posted update and parse it with the library."""
        await asyncio.wait_for(self.arrived.wait(), 10)
        self.arrived.clear()
        update = Update.de_json(self.updates[-1], bot)
        assert update is not None
        return update


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook endpoint."""
    rec = Receiver()

    @post("/hook", status_code=200)
    async def hook(request: Request[Any, Any, Any]) -> Response[str]:
        rec.updates.append(json.loads(await request.body()))
        rec.arrived.set()
        return Response("ok")

    async with serve_asgi(Litestar(route_handlers=[hook], openapi_config=None)) as base_url:
        rec.url = f"{base_url}/hook"
        yield rec


@pytest.fixture(autouse=True)
def durations_as_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to the library's coming duration type (no deprecation warnings)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
async def sim() -> AsyncIterator[TelegramSimulator]:
    """A simulator whose rate limits stay out of the way (one test checks them)."""
    config = TelegramSimConfig(mps=1000.0, per_chat=(1000, 1000.0), seed=5)
    async with run_telegram_simulator(config) as running:
        yield running


def bot_for(sim: TelegramSimulator, token: str | None = None) -> Bot:
    """The library's Bot, pointed at the simulator."""
    return Bot(
        token or sim.config.bot_token,
        base_url=f"{sim.base_url}/bot",
        base_file_url=f"{sim.base_url}/file/bot",
    )


async def test_get_me_and_the_webhook_calls(sim: TelegramSimulator, receiver: Receiver) -> None:
    async with bot_for(sim) as bot:
        assert bot.username == sim.config.bot_username and bot.bot.is_bot
        assert bot.id == int(sim.config.bot_token.split(":")[0])
        assert await bot.set_webhook(
            receiver.url, secret_token="Secret_1", allowed_updates=["message", "callback_query"]
        )
        info = await bot.get_webhook_info()
        assert info.url == receiver.url and info.has_custom_certificate is False
        assert info.pending_update_count == 0
        assert tuple(info.allowed_updates or ()) == ("message", "callback_query")
        assert sim.config.secret_token == "Secret_1"
        with pytest.raises(Conflict):
            await bot.get_updates()
        assert await bot.delete_webhook(drop_pending_updates=True)
        assert (await bot.get_webhook_info()).url == ""
    with pytest.raises(InvalidToken):
        async with bot_for(sim, token="1:wrong"):
            pass


async def test_updates_parse_and_chats_carry_no_language_code(
    sim: TelegramSimulator, receiver: Receiver
) -> None:
    async with bot_for(sim) as bot:
        await bot.set_webhook(receiver.url, secret_token=sim.config.secret_token)
        await sim.customer_sends(CHAT, first_name="Eva", username="eva_k", body="Hallo")
        update = await receiver.next_update(bot)
        assert update.message is not None and update.message.text == "Hallo"
        assert update.message.from_user is not None
        assert update.message.from_user.language_code == "de"
        assert update.message.chat.type == "private" and update.message.chat.username == "eva_k"
        assert "language_code" not in receiver.updates[-1]["message"]["chat"]
        sent = await bot.send_message(CHAT, "Willkommen")
        assert sent.chat.first_name == "Eva" and sent.chat.username == "eva_k"
        assert "language_code" not in sent.chat.api_kwargs


async def test_reply_keyboards_are_not_echoed_inline_keyboards_are(
    sim: TelegramSimulator,
) -> None:
    async with bot_for(sim) as bot:
        reply_keyboard = ReplyKeyboardMarkup(
            [[KeyboardButton("Ja"), KeyboardButton("Mein Standort", request_location=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
        asked = await bot.send_message(CHAT, "Passt das?", reply_markup=reply_keyboard)
        assert asked.text == "Passt das?" and asked.reply_markup is None
        assert sim.ledger[-1].payload["reply_markup"]["keyboard"][0][0] == {"text": "Ja"}
        removed = await bot.send_message(CHAT, "Danke", reply_markup=ReplyKeyboardRemove())
        assert removed.reply_markup is None
        inline = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Shop", web_app=WebAppInfo("https://shop.example/app")),
                    InlineKeyboardButton("Suchen", switch_inline_query_current_chat="Wein "),
                ],
                [InlineKeyboardButton("Ja", callback_data="yes")],
                [InlineKeyboardButton("Seite", url="https://shop.example/")],
            ]
        )
        shown = await bot.send_message(CHAT, "Wählen Sie", reply_markup=inline)
        assert shown.reply_markup is not None
        row = shown.reply_markup.inline_keyboard[0]
        assert row[0].web_app is not None and row[0].web_app.url == "https://shop.example/app"
        assert row[1].switch_inline_query_current_chat == "Wein "
        assert shown.reply_markup.inline_keyboard[1][0].callback_data == "yes"
        with pytest.raises(BadRequest, match=r"(?i)https"):
            await bot.send_message(
                CHAT,
                "x",
                reply_markup=InlineKeyboardMarkup(
                    [[InlineKeyboardButton("App", web_app=WebAppInfo("http://insecure.example"))]]
                ),
            )
        with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
            await bot.send_message(
                CHAT,
                "x",
                reply_markup=InlineKeyboardMarkup(
                    [[InlineKeyboardButton("a", callback_data="x" * 65)]]
                ),
            )
    assert len(sim.ledger) == 3


async def test_chat_action_edit_and_delete(sim: TelegramSimulator) -> None:
    async with bot_for(sim) as bot:
        assert await bot.send_chat_action(CHAT, ChatAction.TYPING)
        assert sim.chat_actions[-1]["action"] == "typing"
        with pytest.raises(BadRequest):
            await bot.send_chat_action(CHAT, "dancing")
        sent = await bot.send_message(
            CHAT,
            "Entwurf",
            reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("Ok", callback_data="ok")]]),
        )
        edited = await bot.edit_message_text("Endgültig", chat_id=CHAT, message_id=sent.message_id)
        assert not isinstance(edited, bool)
        assert edited.text == "Endgültig" and edited.edit_date is not None
        assert edited.reply_markup is None
        with pytest.raises(BadRequest, match=r"(?i)not modified"):
            await bot.edit_message_text("Endgültig", chat_id=CHAT, message_id=sent.message_id)
        with pytest.raises(BadRequest, match=r"(?i)not found"):
            await bot.edit_message_text("x", chat_id=CHAT, message_id=999)
        marked = await bot.edit_message_reply_markup(
            chat_id=CHAT,
            message_id=sent.message_id,
            reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("Neu", callback_data="n")]]),
        )
        assert not isinstance(marked, bool) and marked.reply_markup is not None
        assert sim.ledger[-1].edited_text == "Endgültig"
        assert await bot.delete_message(CHAT, sent.message_id)
        assert sim.ledger[-1].deleted
        with pytest.raises(BadRequest, match=r"(?i)not found"):
            await bot.delete_message(CHAT, sent.message_id)


async def test_commands(sim: TelegramSimulator) -> None:
    async with bot_for(sim) as bot:
        commands = [BotCommand("start", "Los geht's"), BotCommand("hilfe", "Hilfe")]
        assert await bot.set_my_commands(commands)
        assert await bot.set_my_commands([BotCommand("help", "Help")], language_code="en")
        assert tuple(await bot.get_my_commands()) == tuple(commands)
        assert [c.command for c in await bot.get_my_commands(language_code="en")] == ["help"]
        with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
            await bot.set_my_commands([BotCommand("Start!", "x")])
        assert await bot.delete_my_commands()
        assert await bot.get_my_commands() == ()


async def test_uploads_files_and_downloads(sim: TelegramSimulator, receiver: Receiver) -> None:
    async with bot_for(sim) as bot:
        photo = await bot.send_photo(CHAT, photo=PHOTO, caption="Ihr Wein")
        assert photo.caption == "Ihr Wein" and photo.photo and photo.photo[-1].width > 0
        document = await bot.send_document(
            CHAT, document=InputFile(b"%PDF-1.4 sim", filename="rechnung.pdf")
        )
        assert document.document is not None
        voice = await bot.send_voice(CHAT, voice=b"OggS\x00\x02" + bytes(20))
        assert voice.voice is not None and voice.voice.duration == timedelta(seconds=1)
        assert [u["content"] for u in sim.uploads] == [
            PHOTO,
            b"%PDF-1.4 sim",
            b"OggS\x00\x02" + bytes(20),
        ]
        assert sim.uploads[1]["filename"] == "rechnung.pdf"
        assert [e.method for e in sim.ledger] == ["sendPhoto", "sendDocument", "sendVoice"]

        await bot.set_webhook(receiver.url, secret_token=sim.config.secret_token)
        await sim.customer_sends(CHAT, type="photo", body="Etikett", media=PHOTO)
        update = await receiver.next_update(bot)
        assert update.message is not None and update.message.caption == "Etikett"
        file = await update.message.photo[-1].get_file()
        assert file.file_size == len(PHOTO)
        assert bytes(await file.download_as_bytearray()) == PHOTO
        with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
            await bot.get_file("no-such-file")


async def test_button_press_and_callback_answer(sim: TelegramSimulator, receiver: Receiver) -> None:
    async with bot_for(sim) as bot:
        await bot.set_webhook(receiver.url, secret_token=sim.config.secret_token)
        await sim.customer_sends(CHAT, body="Hallo")
        await receiver.next_update(bot)
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Ja", callback_data="yes")]])
        shown = await bot.send_message(CHAT, "Bestellen?", reply_markup=keyboard)
        await sim.customer_presses(CHAT, "yes")
        update = await receiver.next_update(bot)
        query = update.callback_query
        assert query is not None and query.data == "yes"
        assert query.message is not None and query.message.message_id == shown.message_id
        assert await query.answer("Danke!")
        assert sim.answered == [{"callback_query_id": query.id, "text": "Danke!"}]
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await bot.answer_callback_query(query.id)


async def test_get_updates_without_a_webhook(sim: TelegramSimulator) -> None:
    async with bot_for(sim) as bot:
        first = await sim.customer_sends(CHAT, body="eins")
        await sim.customer_sends(CHAT, body="zwei")
        updates = await bot.get_updates()
        assert [u.update_id for u in updates] == [first, first + 1]
        assert [u.message.text for u in updates if u.message] == ["eins", "zwei"]
        assert (await bot.get_webhook_info()).pending_update_count == 2
        assert [u.update_id for u in await bot.get_updates(offset=first + 1)] == [first + 1]
        assert await bot.get_updates(offset=first + 2) == ()
        # A long poll returns as soon as an update comes.
        later = asyncio.get_running_loop().call_later(
            0.2, lambda: asyncio.ensure_future(sim.customer_sends(CHAT, body="drei"))
        )
        polled = await bot.get_updates(offset=first + 2, timeout=10)
        later.cancel()
        assert [u.message.text for u in polled if u.message] == ["drei"]


async def test_refusals_map_to_the_library_errors() -> None:
    config = TelegramSimConfig(per_chat=(1, 0.01), retry_after=3, seed=5)
    async with run_telegram_simulator(config) as sim, bot_for(sim) as bot:
        await bot.send_message(CHAT, "eins")
        with pytest.raises(RetryAfter) as limited:
            await bot.send_message(CHAT, "zwei")
        assert limited.value.retry_after == timedelta(seconds=3)
        sim.block(CHAT + 1)
        with pytest.raises(Forbidden, match=r"(?i)blocked"):
            await bot.send_message(CHAT + 1, "Hallo")
        with pytest.raises(BadRequest, match=r"(?i)text is empty"):
            await bot.send_message(CHAT + 2, " ")
    assert [e.payload["text"] for e in sim.ledger] == ["eins"]
