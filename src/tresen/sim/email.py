"""Real mail servers on loopback for tests and the demo: an SMTP submission server and dovecot."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import typer

from tresen.sim.base import count_repeats

DOVECOT = shutil.which("dovecot") or (
    "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
)


@dataclass
class TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context with the certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def make_tls(directory: Path) -> TlsFiles:
    """Generate a CA and a loopback server certificate (needs `trustme`)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca_file))
    cert.cert_chain_pems[0].write_to_path(str(files.cert_file))
    cert.private_key_pem.write_to_path(str(files.key_file))
    return files


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ReceivedMail:
    """One mail the SMTP server accepted."""

    envelope_from: str
    recipients: list[str]
    raw: bytes
    login: str | None

    @property
    def message(self) -> EmailMessage:
        """The parsed mail."""
        parsed = BytesParser(policy=default_policy).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpServer:
    """A submission server (STARTTLS required before AUTH) that records what it accepts."""

    host: str
    port: int
    username: str
    password: str
    ledger: list[ReceivedMail] = field(default_factory=list)
    refuse: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Recipient address -> SMTP reply (e.g. (550, "5.1.1 no such user")) to refuse it with."""

    def duplicates(self) -> int:
        """How many accepted mails repeat an earlier Message-ID."""
        return count_repeats(self.ledger, lambda m: str(m.message["Message-ID"]))


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, srv: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refused = self.server.refuse.get(address.lower())
        if refused is not None:
            return f"{refused[0]} {refused[1]}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, srv: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if session.auth_data else None
        self.server.ledger.append(
            ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, login)
        )
        return "250 Message accepted"


@asynccontextmanager
async def run_smtp_server(
    tls: TlsFiles,
    username: str = "shop@example.com",
    password: str = "smtp-secret",
    port: int | None = None,
) -> AsyncIterator[SmtpServer]:
    """An aiosmtpd submission server on loopback with STARTTLS and AUTH PLAIN/LOGIN."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    server = SmtpServer("127.0.0.1", port or free_port(), username, password)

    def authenticator(srv: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == username
            and data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    controller = Controller(
        _Handler(server),
        hostname=server.host,
        port=server.port,
        tls_context=tls.server_context(),
        require_starttls=True,
        auth_require_tls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    await asyncio.to_thread(controller.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(controller.stop)


@dataclass
class Dovecot:
    """A dovecot IMAP server (IMAPS only) on loopback with one mailbox in a temporary dir."""

    host: str
    port: int
    username: str
    password: str
    maildir: Path
    log: Path

    def deliver(self, raw: bytes) -> None:
        """Put one mail into the mailbox as new, unseen mail (what an MTA would do)."""
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.tresen"
        tmp = self.maildir / "tmp" / name
        tmp.write_bytes(raw)
        tmp.rename(self.maildir / "new" / name)

    def seen_count(self) -> int:
        """How many mails carry the Seen flag."""
        return sum(
            1
            for p in (self.maildir / "cur").iterdir()
            if ":2," in p.name and "S" in p.name.split(":2,")[1]
        )


_DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain login
first_valid_uid = {uid}
last_valid_uid = 0
first_valid_gid = {gid}
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
mail_location = maildir:{base}/mail/%u/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


@asynccontextmanager
async def run_dovecot(
    tls: TlsFiles,
    username: str = "shop@example.com",
    password: str = "imap-secret",
    binary: str | None = None,
) -> AsyncIterator[Dovecot]:
    """Start dovecot in the foreground with a config in a temporary dir; stop it afterwards."""
    exe = binary or DOVECOT
    if exe is None:
        raise FileNotFoundError("dovecot is not installed (apt-get install -y dovecot-imapd)")
    import grp
    import pwd

    with tempfile.TemporaryDirectory(prefix="tresen-dovecot-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        for sub in ("run", "state"):
            (base / sub).mkdir()
        maildir = base / "mail" / username / "Maildir"
        for sub in ("new", "cur", "tmp"):
            (maildir / sub).mkdir(parents=True)
        (base / "passwd").write_text(f"{username}:{{PLAIN}}{password}\n")
        port = free_port()
        uid, gid = os.getuid(), os.getgid()
        user, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
        login_user = user
        if uid == 0:
            # dovecot refuses to run its login and mail processes as root.
            internal = pwd.getpwnam("dovecot")
            uid, gid, user = internal.pw_uid, internal.pw_gid, internal.pw_name
            group = grp.getgrgid(gid).gr_name
            login_user = "dovenull"
            for path in [base, *base.rglob("*")]:
                os.chown(path, uid, gid)
        conf = base / "dovecot.conf"
        conf.write_text(
            _DOVECOT_CONF.format(
                base=base,
                cert=tls.cert_file,
                key=tls.key_file,
                port=port,
                uid=uid,
                gid=gid,
                user=user,
                group=group,
                login_user=login_user,
            )
        )
        proc = subprocess.Popen(
            [exe, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        server = Dovecot("127.0.0.1", port, username, password, maildir, base / "dovecot.log")
        try:
            deadline = time.monotonic() + 10
            while True:
                if proc.poll() is not None:
                    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    log = server.log.read_text() if server.log.exists() else ""
                    raise RuntimeError(f"dovecot exited ({proc.returncode}): {out} {log}"[-2000:])
                try:
                    with socket.create_connection((server.host, port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("dovecot did not start listening in 10 s") from None
                    await asyncio.sleep(0.05)
            yield server
        finally:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()


def add_cli(sim_app: typer.Typer) -> None:
    """Register `tresen sim email`: a local SMTP submission server that prints what it gets."""

    @sim_app.command("email")
    def sim_email(
        port: int = typer.Option(2587, help="SMTP port on 127.0.0.1"),
        webhook: str = typer.Option("", help="unused: e-mail has no webhook (IMAP is polled)"),
        username: str = typer.Option("shop@example.com"),
        password: str = typer.Option("smtp-secret"),
    ) -> None:
        """A local SMTP server with STARTTLS and AUTH; prints each accepted mail's headers."""
        missing = [name for name in ("aiosmtpd", "trustme") if not importlib.util.find_spec(name)]
        if missing:
            typer.echo(
                f"error: tresen sim email needs {' and '.join(missing)}: "
                f"pip install {' '.join(missing)}",
                err=True,
            )
            raise typer.Exit(2)

        async def main() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                tls = make_tls(Path(tmp))
                async with run_smtp_server(tls, username, password, port) as server:
                    typer.echo(f"SMTP on 127.0.0.1:{server.port}, CA: {tls.ca_file}")
                    seen = 0
                    while True:
                        await asyncio.sleep(0.5)
                        for mail in server.ledger[seen:]:
                            m = mail.message
                            typer.echo(f"accepted {m['Message-ID']} -> {len(mail.recipients)}")
                        seen = len(server.ledger)

        del webhook
        asyncio.run(main())
