"""The live check of the mail and XMPP channels against real servers (aiosmtpd, Dovecot, Prosody)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tresen.channels.base import AuthError, TransientError
from tresen.channels.email import EmailChannel
from tresen.channels.xmpp import XmppChannel
from tresen.sim.email import (
    DOVECOT,
    Dovecot,
    SmtpServer,
    TlsFiles,
    free_port,
    make_tls,
    run_dovecot,
    run_smtp_server,
)
from tresen.sim.xmpp import PROSODY, Prosody, make_prosody


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    pytest.importorskip("trustme", reason="trustme (test dependency) is not installed")
    return make_tls(tmp_path)


@pytest.fixture
async def smtp(tls: TlsFiles) -> AsyncIterator[SmtpServer]:
    pytest.importorskip("aiosmtpd", reason="aiosmtpd (test dependency) is not installed")
    async with run_smtp_server(tls) as server:
        yield server


@pytest.fixture
async def dovecot(tls: TlsFiles) -> AsyncIterator[Dovecot]:
    if DOVECOT is None:
        pytest.skip("dovecot not installed (apt-get install -y dovecot-imapd)")
    async with run_dovecot(tls, binary=DOVECOT) as server:
        yield server


@pytest.fixture
def prosody(tmp_path: Path, tls: TlsFiles) -> Iterator[Prosody]:
    if PROSODY is None:
        pytest.skip("prosody is not installed (apt-get install -y prosody)")
    server = make_prosody(tmp_path / "prosody", tls)
    server.register("shop", "shop-secret")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _mail(smtp: SmtpServer, dovecot: Dovecot, tls: TlsFiles, **overrides: object) -> EmailChannel:
    config = {
        "address": "shop@example.com",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_password": "smtp-secret",
        "imap_host": "127.0.0.1",
        "imap_port": dovecot.port,
        "imap_password": "imap-secret",
        "tls_ca_file": str(tls.ca_file),
        **overrides,
    }
    return EmailChannel(EmailChannel.check_config(config), httpx.AsyncClient())


async def test_the_mail_check_signs_in_at_smtp_and_imap(
    smtp: SmtpServer, dovecot: Dovecot, tls: TlsFiles
) -> None:
    assert await _mail(smtp, dovecot, tls).check() == "shop@example.com"
    with pytest.raises(AuthError):
        await _mail(smtp, dovecot, tls, smtp_password="falsch").check()
    with pytest.raises(AuthError, match="IMAP"):
        await _mail(smtp, dovecot, tls, imap_password="falsch").check()
    with pytest.raises(TransientError, match="IMAP server not reachable"):
        await _mail(smtp, dovecot, tls, imap_port=free_port()).check()
    with pytest.raises(TransientError):
        await _mail(smtp, dovecot, tls, smtp_port=free_port()).check()


async def test_the_xmpp_check_signs_in_once_and_names_a_wrong_password(
    prosody: Prosody, tls: TlsFiles
) -> None:
    def channel(password: str) -> XmppChannel:
        return XmppChannel(
            {
                "jid": "shop@localhost",
                "password": password,
                "host": "127.0.0.1",
                "port": prosody.port,
                "tls_ca_file": str(tls.ca_file),
            },
            httpx.AsyncClient(),
        )

    assert await channel("shop-secret").check() == "shop@localhost"
    with pytest.raises(AuthError):
        await channel("falsch").check()
