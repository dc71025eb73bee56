"""The loopback mail servers themselves: SMTP submission (STARTTLS + AUTH) and dovecot."""

from __future__ import annotations

import imaplib
import os
import smtplib
import ssl
from pathlib import Path

import pytest

from tresen.sim.email import DOVECOT, make_tls, run_dovecot, run_smtp_server

IN_CI = os.environ.get("CI", "").lower() == "true"
MAIL = b"From: shop@example.com\r\nTo: a@example.org\r\nMessage-ID: <s.1@x>\r\n\r\nhi\r\n"


async def test_smtp_requires_starttls_and_auth_and_counts_duplicates(tmp_path: Path) -> None:
    pytest.importorskip("aiosmtpd", reason="aiosmtpd (test dependency) is not installed")
    pytest.importorskip("trustme", reason="trustme (test dependency) is not installed")
    tls = make_tls(tmp_path)
    async with run_smtp_server(tls) as server:
        with (
            smtplib.SMTP(server.host, server.port, timeout=5) as plain,
            pytest.raises(smtplib.SMTPException),
        ):
            plain.login(server.username, server.password)  # AUTH only after STARTTLS
        ctx = ssl.create_default_context(cafile=str(tls.ca_file))
        with smtplib.SMTP(server.host, server.port, timeout=5) as conn:
            conn.starttls(context=ctx)
            with pytest.raises(smtplib.SMTPSenderRefused):
                conn.sendmail("shop@example.com", ["a@example.org"], MAIL)  # AUTH required
            conn.login(server.username, server.password)
            conn.sendmail("shop@example.com", ["a@example.org"], MAIL)
            conn.sendmail("shop@example.com", ["a@example.org"], MAIL)
        assert len(server.ledger) == 2 and server.duplicates() == 1
        assert server.ledger[0].login == server.username


async def test_dovecot_serves_delivered_mail_over_imaps(tmp_path: Path) -> None:
    if DOVECOT is None:
        if IN_CI:
            pytest.fail("CI=true but dovecot is missing: apt-get install -y dovecot-imapd")
        pytest.skip("dovecot not installed (apt-get install -y dovecot-imapd)")
    pytest.importorskip("trustme", reason="trustme (test dependency) is not installed")
    tls = make_tls(tmp_path)
    async with run_dovecot(tls) as server:
        server.deliver(MAIL)
        ctx = ssl.create_default_context(cafile=str(tls.ca_file))
        conn = imaplib.IMAP4_SSL(server.host, server.port, ssl_context=ctx, timeout=5)
        try:
            conn.login(server.username, server.password)
            conn.select("INBOX")
            status, data = conn.uid("SEARCH", "UNSEEN")
            assert status == "OK" and len(data[0].split()) == 1
            conn.uid("STORE", data[0].decode(), "+FLAGS", "(\\Seen)")
        finally:
            conn.logout()
        assert server.seen_count() == 1
