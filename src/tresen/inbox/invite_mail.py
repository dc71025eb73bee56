"""Invitations by e-mail: sent through the SMTP server of the workspace's e-mail channel."""

from __future__ import annotations

import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

import aiosmtplib
import msgspec
from babel.dates import format_datetime as babel_datetime
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.email import EmailConfig
from tresen.db.tables import ChannelRow
from tresen.db.types import utcnow

TIMEOUT = 20.0
"""Seconds for the whole SMTP exchange; the admin waits for it."""

SUBJECT = {
    "de": "Einladung zu {business} bei tresen",
    "en": "Invitation to {business} on tresen",
}
BODY = {
    ("de", "sie"): (
        "Guten Tag,\n\n{inviter} lädt Sie ein, bei {business} im Posteingang von tresen "
        "mitzuarbeiten.\n\nÜber diesen Link legen Sie Ihr Passwort fest:\n{link}\n\n"
        "Der Link gilt einmal und bis {until}.\n"
        "Wenn Sie keine Einladung erwartet haben, ignorieren Sie diese E-Mail einfach.\n"
    ),
    ("de", "du"): (
        "Hallo,\n\n{inviter} lädt dich ein, bei {business} im Posteingang von tresen "
        "mitzuarbeiten.\n\nÜber diesen Link legst du dein Passwort fest:\n{link}\n\n"
        "Der Link gilt einmal und bis {until}.\n"
        "Wenn du keine Einladung erwartet hast, ignoriere diese E-Mail einfach.\n"
    ),
    ("en", "sie"): (
        "Hello,\n\n{inviter} invites you to work in the tresen inbox of {business}.\n\n"
        "Set your password with this link:\n{link}\n\n"
        "The link works once and until {until}.\n"
        "If you did not expect an invitation, simply ignore this e-mail.\n"
    ),
}


class MailFailed(Exception):
    """The invitation could not be handed to the mail server (the reason is safe to show)."""


async def mail_channel(session: AsyncSession, workspace_id: str) -> ChannelRow | None:
    """The workspace's first enabled e-mail channel: its SMTP server sends invitations."""
    return await session.scalar(
        select(ChannelRow)
        .where(
            ChannelRow.workspace_id == workspace_id,
            ChannelRow.kind == "email",
            ChannelRow.enabled.is_(True),
        )
        .order_by(ChannelRow.created_at)
        .limit(1)
    )


def compose(
    config: EmailConfig,
    *,
    to: str,
    link: str,
    business: str,
    inviter: str,
    expires_at: datetime,
    time_zone: str,
    language: str,
    form: str,
) -> EmailMessage:
    """The invitation in the workspace's language and form of address (English has one form)."""
    lang = language if language in SUBJECT else "de"
    body = BODY.get((lang, form)) or BODY[(lang, "sie")]
    until = babel_datetime(expires_at, "medium", tzinfo=ZoneInfo(time_zone), locale=lang)
    mail = EmailMessage()
    mail["From"] = (
        f"{config.display_name} <{config.address}>" if config.display_name else config.address
    )
    mail["To"] = to
    mail["Subject"] = SUBJECT[lang].format(business=business)
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = make_msgid("tresen.invite", config.address.rsplit("@", 1)[-1])
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(
        body.format(inviter=inviter, business=business, link=link, until=f"{until} ({time_zone})")
    )
    return mail


def config_of(channel: ChannelRow) -> EmailConfig:
    """The mailbox settings of an e-mail channel."""
    return msgspec.convert(dict(channel.config), EmailConfig)


async def send(config: EmailConfig, mail: EmailMessage) -> None:
    """Hand the mail to the channel's SMTP server, as the channel sends replies."""
    implicit_tls = config.smtp_port == 465
    try:
        await aiosmtplib.send(
            mail,
            hostname=config.smtp_host,
            port=config.smtp_port,
            username=config.smtp_username or None,
            password=config.smtp_password or None,
            use_tls=implicit_tls,
            start_tls=config.smtp_starttls if not implicit_tls else False,
            tls_context=ssl.create_default_context(cafile=config.tls_ca_file),
            timeout=TIMEOUT,
        )
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise MailFailed("the mail server refused the login") from exc
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise MailFailed("the mail server refused the address") from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise MailFailed("the mail server could not be reached") from exc
