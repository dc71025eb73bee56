"""A real XMPP server on loopback for tests: Debian's Prosody with its own config, data and ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tresen.sim.email import TlsFiles, free_port

PROSODY = shutil.which("prosody") or (
    "/usr/bin/prosody" if os.path.exists("/usr/bin/prosody") else None
)
PROSODYCTL = shutil.which("prosodyctl") or (
    "/usr/bin/prosodyctl" if os.path.exists("/usr/bin/prosodyctl") else None
)
DOMAIN = "localhost"


def _lua(value: str | Path) -> str:
    """A Lua long string literal (paths never contain "]]")."""
    text = str(value)
    if "]]" in text or "\n" in text:
        raise ValueError(f"cannot put {text!r} into the Prosody config")
    return f"[[{text}]]"


@dataclass
class Prosody:
    """One Prosody server: a config file, a data dir and a c2s port on 127.0.0.1."""

    directory: Path
    port: int
    tls: TlsFiles | None
    domain: str = DOMAIN
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def config_file(self) -> Path:
        """The Prosody config this server runs with."""
        return self.directory / "prosody.cfg.lua"

    @property
    def log_file(self) -> Path:
        """Prosody's log (read it when a test fails)."""
        return self.directory / "prosody.log"

    def write_config(self) -> None:
        """Write a config: loopback only, no s2s, no HTTP, plain-stored passwords (tests)."""
        (self.directory / "data").mkdir(exist_ok=True)
        modules = ["roster", "saslauth", "disco", "offline", "ping", "mam"]
        modules += ["tls"] if self.tls else []
        lines = [
            f"pidfile = {_lua(self.directory / 'prosody.pid')}",
            f"data_path = {_lua(self.directory / 'data')}",
            # Only our throw-away server runs as root (in containers); prosody refuses otherwise.
            "run_as_root = true",
            'interfaces = { "127.0.0.1" }',
            f"c2s_ports = {{ {self.port} }}",
            "c2s_direct_tls_ports = { }",
            "http_ports = { }",
            "https_ports = { }",
            'authentication = "internal_plain"',
            'storage = "internal"',
            # mod_mam keeps every message the shop gets: after a crash tresen reads it again.
            "default_archive_policy = true",
            f'log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = {_lua(self.log_file)} }} }}',
            f"modules_enabled = {{ {', '.join(repr(m) for m in modules)} }}",
            'modules_disabled = { "s2s" }',
            f"c2s_require_encryption = {'true' if self.tls else 'false'}",
            "allow_unencrypted_plain_auth = true" if not self.tls else "",
            f'VirtualHost "{self.domain}"',
        ]
        if self.tls:
            lines.append(
                f"  ssl = {{ certificate = {_lua(self.tls.cert_file)}, key = {_lua(self.tls.key_file)} }}"
            )
        self.config_file.write_text("\n".join(lines) + "\n")

    def register(self, user: str, password: str) -> str:
        """Create an account; returns its JID."""
        if PROSODYCTL is None:
            raise FileNotFoundError("prosodyctl is not installed (apt-get install -y prosody)")
        subprocess.run(
            [
                PROSODYCTL,
                "--config",
                str(self.config_file),
                "register",
                user,
                self.domain,
                password,
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return f"{user}@{self.domain}"

    def start(self, timeout: float = 20.0) -> None:
        """Start Prosody in the foreground and wait until it accepts connections."""
        if PROSODY is None:
            raise FileNotFoundError("prosody is not installed (apt-get install -y prosody)")
        self.process = subprocess.Popen(
            [PROSODY, "--config", str(self.config_file), "-F"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prosody exited at start: {self.tail_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prosody did not listen on port {self.port}: {self.tail_log()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop Prosody (SIGTERM: it closes every stream) and wait for it to exit."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def tail_log(self, lines: int = 30) -> str:
        """The end of Prosody's log."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def make_prosody(directory: Path, tls: TlsFiles | None) -> Prosody:
    """A configured but not yet started Prosody in `directory` on a free port."""
    directory.mkdir(parents=True, exist_ok=True)
    server = Prosody(directory=directory, port=free_port(), tls=tls)
    server.write_config()
    return server
