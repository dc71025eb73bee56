"""`tresen bench ingest`: signed WhatsApp webhooks against a real server, at a fixed concurrency.

The parent process prepares a fresh database (a SQLite file in a temp dir, or a new PostgreSQL
database next to the one `database_url` names), seeds one WhatsApp channel, contacts and outbound
messages, starts `tresen serve` as a subprocess and runs the load generator in another process
(`python -m tresen.bench.ingest --loadgen`, config on stdin, one JSON result on stdout). The
generator speaks HTTP/1.1 keep-alive on raw asyncio transports; every body is built and signed
before its phase starts. After the load the parent checks in the database that every webhook
answered 200 left its mark, and that no inbound message was stored twice.

Traffic mix, per generator connection and "unit" u (one outbound message per unit, like Meta
sends it): one inbound text message (unique wamid, sender drawn from `SENDERS` addresses of
which `KNOWN_SENDERS` exist before the run) plus the `sent` status of outbound message u, the
`delivered` status of message u-1 and the `read` status of message u-2 -- so the statuses of one
message always arrive in order (on one connection) and spaced apart, as from Meta. Outbound
messages are pre-inserted in state `sent` (what tresen records when the Cloud API accepted a
send), so `sent` webhooks are no-ops (stale), `delivered`/`read` move the message forward.
Statuses for messages beyond the pre-inserted ones land as pending statuses. Every
`REDELIVER_EVERY`th unit re-posts another connection's inbound webhook (Meta retries), which
must be acknowledged and not stored twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

SENDERS = 3000
KNOWN_SENDERS = 2000
REDELIVER_EVERY = 50
PHONE_NUMBER_ID = "100000000000001"
WABA_ID = "102290129340398"
APP_SECRET = "bench-app-secret"
MAX_PREBUILT_REQUESTS = 200_000
OUTBOUND_PER_SECOND = (
    2500  # pre-inserted outbound messages per benchmark second (up to 10k webhooks/s)
)


def _log(msg: str) -> None:
    print(f"[bench ingest] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Webhook bodies (shared by parent and generator)


def _address(n: int) -> str:
    return f"49170{n:08d}"


def _name(n: int) -> str:
    return f"Kunde {n}"


def _out_wamid(run: str, o: int) -> str:
    return f"wamid.{run}.out.{o:09d}"


def _in_wamid(run: str, w: int, u: int) -> str:
    return f"wamid.{run}.in.{w:04d}.{u:07d}"


def _envelope(value: dict[str, Any]) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "4930123456", "phone_number_id": PHONE_NUMBER_ID},
        **value,
    }
    envelope = {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}],
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def _inbound_body(wamid: str, sender: int, ts: int) -> bytes:
    addr = _address(sender)
    return _envelope(
        {
            "contacts": [{"profile": {"name": _name(sender)}, "wa_id": addr}],
            "messages": [
                {
                    "from": addr,
                    "id": wamid,
                    "timestamp": str(ts),
                    "type": "text",
                    "text": {
                        "body": f"Hallo, ist meine Bestellung schon unterwegs? Nummer {wamid[-7:]}"
                    },
                }
            ],
        }
    )


def _status_body(wamid: str, state: str, recipient: int, ts: int) -> bytes:
    status: dict[str, Any] = {
        "id": wamid,
        "status": state,
        "timestamp": str(ts),
        "recipient_id": _address(recipient),
    }
    if state != "read":
        status["conversation"] = {"id": f"c0ffee{wamid[-9:]}", "origin": {"type": "service"}}
        status["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
    return _envelope({"statuses": [status]})


def _http_post(path: str, body: bytes, secret: bytes) -> bytes:
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: facebookexternalua\r\n"
        f"Accept: */*\r\nContent-Type: application/json\r\nX-Hub-Signature-256: sha256={digest}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# ---------------------------------------------------------------------------------------------
# Load generator (runs in its own process)


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.fut: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            return
        head = buf[:end].lower()
        i = head.find(b"content-length:")
        if i < 0:
            self._fail(ConnectionError("response without Content-Length"))
            return
        j = head.find(b"\r\n", i)
        total = end + 4 + int(head[i + 15 : j if j >= 0 else len(head)])
        if len(buf) < total:
            self.buf = buf
            return
        self.buf = buf[total:]
        fut, self.fut = self.fut, None
        if fut is not None and not fut.done():
            fut.set_result(int(buf[9:12]))

    def _fail(self, exc: Exception) -> None:
        fut, self.fut = self.fut, None
        if fut is not None and not fut.done():
            fut.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection lost: {exc}"))

    def request(self, data: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.fut = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.fut


class _Stream:
    """The requests of one generator connection: prebuilt, extended on the fly if exhausted."""

    def __init__(self, cfg: dict[str, Any], w: int) -> None:
        self.cfg = cfg
        self.w = w
        self.requests: list[tuple[str, Any, bytes]] = []
        self.pos = 0
        self.next_unit = 0
        self.path = f"/webhooks/whatsapp/{cfg['channel_id']}"
        self.secret = cfg["app_secret"].encode()

    def build_unit(self) -> None:
        cfg, w, u = self.cfg, self.w, self.next_unit
        self.next_unit += 1
        run, c = cfg["run"], cfg["concurrency"]
        now = int(time.time())
        out = self.requests
        wamid = _in_wamid(run, w, u)
        sender = ((u * c + w) * 7919) % SENDERS
        out.append(
            ("in", wamid, _http_post(self.path, _inbound_body(wamid, sender, now), self.secret))
        )
        for lag, state in ((0, "sent"), (1, "delivered"), (2, "read")):
            if u - lag < 0:
                continue
            o = (u - lag) * c + w
            key = [_out_wamid(run, o), state]
            out.append(
                (
                    "st",
                    key,
                    _http_post(
                        self.path, _status_body(key[0], state, o % SENDERS, now), self.secret
                    ),
                )
            )
        if u % REDELIVER_EVERY == REDELIVER_EVERY - 1 and c > 1:
            other = (w + 1) % c
            again = _in_wamid(run, other, u)
            sender = ((u * c + other) * 7919) % SENDERS
            out.append(
                ("in", again, _http_post(self.path, _inbound_body(again, sender, now), self.secret))
            )

    def prebuild(self, n: int) -> None:
        while len(self.requests) - self.pos < n:
            self.build_unit()

    def next(self) -> tuple[str, Any, bytes]:
        if self.pos >= len(self.requests):
            self.build_unit()
        item = self.requests[self.pos]
        self.pos += 1
        return item


def _proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _pids_named(name: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm", "rb") as f:
                    if f.read().strip() == name.encode():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def _cpu_snapshot(server_pids: list[int], pg: bool) -> dict[str, dict[int, float]]:
    snap = {"server": {p: _proc_cpu(p) for p in server_pids}}
    if pg:
        snap["postgres"] = {p: _proc_cpu(p) for p in _pids_named("postgres")}
    return snap


def _cpu_delta(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    return {
        group: round(sum(v - before[group].get(p, 0.0) for p, v in after[group].items()), 2)
        for group in after
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * (len(sorted_values) - 1) + 0.5))]


async def _phase(
    cfg: dict[str, Any], seconds: float, next_request: Any, record: bool
) -> dict[str, Any]:
    """Run `concurrency` connections for `seconds`; next_request(w) gives (kind, key, bytes)."""
    loop = asyncio.get_running_loop()
    concurrency = cfg["concurrency"]
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    acked: list[tuple[str, Any]] = []
    statuses: dict[int, int] = {}
    errors = 0
    ends: list[float] = []

    async def connect() -> _Conn:
        _, proto = await loop.create_connection(_Conn, "127.0.0.1", cfg["port"])
        return proto

    conns = [await connect() for _ in range(concurrency)]
    start = time.perf_counter()
    deadline = start + seconds

    async def run(w: int) -> None:
        nonlocal errors
        conn = conns[w]
        lat = latencies[w]
        perf = time.perf_counter
        while True:
            t0 = perf()
            if t0 >= deadline:
                break
            kind, key, data = next_request(w)
            try:
                status = await conn.request(data)
            except ConnectionError:
                errors += 1
                conn = await connect()
                continue
            t1 = perf()
            lat.append(t1 - t0)
            if status == 200:
                if record:
                    acked.append((kind, key))
            else:
                errors += 1
                statuses[status] = statuses.get(status, 0) + 1
        ends.append(perf())
        if conn.transport is not None:
            conn.transport.close()

    cpu0 = time.process_time()
    await asyncio.gather(*(run(w) for w in range(concurrency)))
    elapsed = max(ends) - start
    merged = sorted(x for lat in latencies for x in lat)
    ok = len(merged) - sum(statuses.values())
    return {
        "ok": ok,
        "errors": errors,
        "bad_status": {str(k): v for k, v in statuses.items()},
        "elapsed": elapsed,
        "rps": ok / elapsed if elapsed > 0 else 0.0,
        "p50_ms": _percentile(merged, 0.50) * 1000,
        "p99_ms": _percentile(merged, 0.99) * 1000,
        "max_ms": (merged[-1] if merged else 0.0) * 1000,
        "loadgen_cpu_s": time.process_time() - cpu0,
        "acked": acked,
    }


async def _loadgen(cfg: dict[str, Any]) -> dict[str, Any]:
    concurrency = cfg["concurrency"]
    ping = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n"
    streams = [_Stream(cfg, w) for w in range(concurrency)]
    budget = min(
        MAX_PREBUILT_REQUESTS, int(cfg["prebuild_rate"] * (cfg["seconds"] + cfg["warmup_seconds"]))
    )
    for s in streams:
        s.prebuild(max(8, budget // concurrency))
    _log(f"prebuilt {sum(len(s.requests) for s in streams)} signed webhooks")
    server_pids, pg = cfg["server_pids"], cfg["postgres"]

    def hello(_w: int) -> tuple[str, Any, bytes]:
        return ("ping", None, ping)

    def webhook(w: int) -> tuple[str, Any, bytes]:
        return streams[w].next()

    result: dict[str, Any] = {}
    await _phase(cfg, cfg["warmup_seconds"], hello, record=False)
    _log(f"hello phase: GET /ping for {cfg['hello_seconds']} s at concurrency {concurrency}")
    before = _cpu_snapshot(server_pids, pg)
    result["hello"] = await _phase(cfg, cfg["hello_seconds"], hello, record=False)
    result["hello"]["cpu_s"] = _cpu_delta(before, _cpu_snapshot(server_pids, pg))
    warm = await _phase(cfg, cfg["warmup_seconds"], webhook, record=True)
    _log(f"ingest phase: {cfg['seconds']} s at concurrency {concurrency}")
    before = _cpu_snapshot(server_pids, pg)
    result["ingest"] = await _phase(cfg, cfg["seconds"], webhook, record=True)
    result["ingest"]["cpu_s"] = _cpu_delta(before, _cpu_snapshot(server_pids, pg))
    result["warmup_ingest"] = warm
    built = sum(len(s.requests) for s in streams)
    result["built_on_the_fly"] = max(0, built - budget)
    return result


def _loadgen_main() -> None:
    cfg = json.loads(sys.stdin.read())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_loadgen(cfg))
    # The event loop may have left stdout non-blocking; a large result must not be cut short.
    os.set_blocking(sys.stdout.fileno(), True)
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# Parent: database, server, verification


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _admin(url: str, sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def _seed(url: str, run: str, n_outbound: int) -> tuple[str, str]:
    """Migrate, add the channel, known contacts with conversations and outbound messages."""
    from sqlalchemy import Table

    from tresen.channels.manage import add_channel, default_workspace
    from tresen.db.engine import make_engine, make_sessionmaker
    from tresen.db.migrate import upgrade_to_head
    from tresen.db.tables import Contact, ContactIdentity, Conversation, Message
    from tresen.db.types import utcnow
    from tresen.domain.ids import new_id

    engine = make_engine(url)
    try:
        await upgrade_to_head(engine)
        sessions = make_sessionmaker(engine)
        async with sessions() as session, session.begin():
            ws = await default_workspace(session, "Benchladen")
            row = await add_channel(
                session,
                ws.id,
                "whatsapp",
                "Bench WhatsApp",
                {
                    "phone_number_id": PHONE_NUMBER_ID,
                    "app_secret": APP_SECRET,
                    "verify_token": "bench",
                    "access_token": "bench",
                    "api_base": "http://127.0.0.1:9",
                    "messages_per_second": 1000.0,
                },
            )
            channel_id, workspace_id = row.id, ws.id
        now = utcnow()
        contacts, identities, conversations = [], [], []
        for n in range(KNOWN_SENDERS):
            cid, iid, vid = new_id(), new_id(), new_id()
            contacts.append(
                {
                    "id": cid,
                    "workspace_id": workspace_id,
                    "display_name": _name(n),
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
            )
            identities.append(
                {
                    "id": iid,
                    "workspace_id": workspace_id,
                    "contact_id": cid,
                    "channel_id": channel_id,
                    "address": _address(n),
                    "display_name": _name(n),
                    "unreachable": False,
                    "created_at": now,
                }
            )
            conversations.append(
                {
                    "id": vid,
                    "workspace_id": workspace_id,
                    "channel_id": channel_id,
                    "contact_id": cid,
                    "identity_id": iid,
                    "status": "open",
                    "created_at": now,
                    "last_inbound_at": now,
                    "last_message_at": now,
                }
            )
        async with sessions() as session, session.begin():
            await session.execute(cast(Table, Contact.__table__).insert(), contacts)
            await session.execute(cast(Table, ContactIdentity.__table__).insert(), identities)
            await session.execute(cast(Table, Conversation.__table__).insert(), conversations)
        chunk = 10_000
        for start in range(0, n_outbound, chunk):
            rows = [
                {
                    "id": new_id(),
                    "workspace_id": workspace_id,
                    "conversation_id": conversations[o % KNOWN_SENDERS]["id"],
                    "channel_id": channel_id,
                    "direction": "outbound",
                    "sender_kind": "agent",
                    "content_kind": "text",
                    "body": "Ihre Bestellung ist unterwegs.",
                    "payload": {},
                    "provider_message_id": _out_wamid(run, o),
                    "state": "sent",
                    "created_at": now,
                    "sent_at": now,
                    "send_attempts": 1,
                }
                for o in range(start, min(n_outbound, start + chunk))
            ]
            async with sessions() as session, session.begin():
                await session.execute(cast(Table, Message.__table__).insert(), rows)
        return channel_id, workspace_id
    finally:
        await engine.dispose()


async def _verify(url: str, channel_id: str, acked: list[tuple[str, Any]]) -> dict[str, Any]:
    """How many acked webhooks the database reflects; inbound messages stored twice."""
    from sqlalchemy import text

    from tresen.db.engine import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            inbound = {
                r[0]: r[1]
                for r in await conn.execute(
                    text(
                        "SELECT provider_message_id, COUNT(*) FROM messages WHERE channel_id = :c "
                        "AND direction = 'inbound' GROUP BY provider_message_id"
                    ),
                    {"c": channel_id},
                )
            }
            outbound = {
                r[0]: (r[1] is not None, r[2] is not None, r[3] is not None)
                for r in await conn.execute(
                    text(
                        "SELECT provider_message_id, sent_at, delivered_at, read_at FROM messages "
                        "WHERE channel_id = :c AND direction = 'outbound'"
                    ),
                    {"c": channel_id},
                )
            }
            pending = {
                (r[0], r[1])
                for r in await conn.execute(
                    text(
                        "SELECT provider_message_id, state FROM pending_statuses WHERE channel_id = :c"
                    ),
                    {"c": channel_id},
                )
            }
            dup_rows = (
                await conn.execute(
                    text(
                        "SELECT COUNT(*) FROM (SELECT provider_message_id FROM messages WHERE channel_id = :c "
                        "GROUP BY provider_message_id HAVING COUNT(*) > 1) d"
                    ),
                    {"c": channel_id},
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    column = {"sent": 0, "delivered": 1, "read": 2}
    stored = 0
    kinds = {"inbound": 0, "status_noop": 0, "status_applied": 0, "status_pending": 0, "missing": 0}
    for kind, key in acked:
        if kind == "in":
            ok = key in inbound
            kinds["inbound"] += ok
        else:
            wamid, state = key
            marks = outbound.get(wamid)
            if marks is not None:
                ok = marks[column[state]]
                kinds["status_noop" if state == "sent" else "status_applied"] += ok
            else:
                ok = (wamid, state) in pending
                kinds["status_pending"] += ok
        stored += ok
        kinds["missing"] += not ok
    return {
        "stored": stored,
        "duplicates": int(dup_rows),
        "stored_by_kind": kinds,
        "inbound_rows": len(inbound),
    }


def _children(pid: int) -> list[int]:
    found = []
    try:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
                if ppid == pid:
                    found.append(int(entry))
    except OSError:
        pass
    return found


async def _start_server(
    url: str, data_dir: Path, port: int, web_processes: int, log_path: Path
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESEN_")}
    env.update(
        {
            "TRESEN_DATABASE_URL": url,
            "TRESEN_DATA_DIR": str(data_dir),
            "TRESEN_EMBEDDED_WORKER": "0",
            "TRESEN_SECRET_KEY": secrets.token_urlsafe(32),
            "TRESEN_BASE_URL": f"http://127.0.0.1:{port}",
        }
    )
    cmd = [
        sys.executable,
        "-c",
        "from tresen.cli import main; main()",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-worker",
        "--workers",
        str(web_processes),
    ]
    log = open(log_path, "wb")  # noqa: SIM115 - closed right after the fork
    proc = subprocess.Popen(
        cmd, env=env, cwd=data_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()  # the server holds its own copy
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}"
            )
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = await reader.read()
            writer.close()
            if answer.startswith(b"HTTP/1.1 200"):
                if web_processes > 1 and len(_children(proc.pid)) < web_processes:
                    await asyncio.sleep(0.2)
                    continue
                await asyncio.sleep(
                    0.5 if web_processes > 1 else 0.0
                )  # let every worker finish its lifespan
                return proc
        except OSError:
            pass
        await asyncio.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not answer /ping within 60 s")


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


async def run_ingest_bench(
    *,
    seconds: float,
    concurrency: int,
    database_url: str,
    web_processes: int = 1,
    hello_seconds: float | None = None,
    warmup_seconds: float = 1.0,
) -> dict[str, Any]:
    """Run the ingest benchmark and return its figures (one JSON-able dict)."""
    from tresen.settings import normalise_database_url

    run = secrets.token_hex(4)
    tmp = Path(tempfile.mkdtemp(prefix="tresen-bench-ingest-"))
    admin_url = db_name = ""
    if database_url and not database_url.startswith("sqlite"):
        admin_url = normalise_database_url(database_url)
        db_name = f"tresen_bench_{run}"
        url = admin_url.rsplit("/", 1)[0] + "/" + db_name
        _log(f"creating PostgreSQL database {db_name}")
        await _admin(admin_url, f'CREATE DATABASE "{db_name}"')
        kind = "postgresql"
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'tresen.db'}"
        kind = "sqlite"
    hello_seconds = hello_seconds if hello_seconds is not None else min(seconds, 10.0)
    n_outbound = int(OUTBOUND_PER_SECOND * (seconds + warmup_seconds))
    proc = None
    try:
        _log(f"seeding {kind} database ({KNOWN_SENDERS} contacts, {n_outbound} outbound messages)")
        channel_id, _ = await _seed(url, run, n_outbound)
        port = _free_port()
        _log(f"starting server on port {port} with {web_processes} web process(es)")
        proc = await _start_server(url, tmp, port, web_processes, tmp / "server.log")
        server_pids = [proc.pid, *_children(proc.pid)]
        cfg = {
            "run": run,
            "port": port,
            "channel_id": channel_id,
            "app_secret": APP_SECRET,
            "concurrency": concurrency,
            "seconds": seconds,
            "hello_seconds": hello_seconds,
            "warmup_seconds": warmup_seconds,
            "prebuild_rate": 6000,
            "server_pids": server_pids,
            "postgres": kind == "postgresql",
        }
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tresen.bench.ingest",
            "--loadgen",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await child.communicate(json.dumps(cfg).encode())
        if child.returncode != 0:
            raise RuntimeError(f"load generator failed with exit code {child.returncode}")
        gen = json.loads(out)
        _stop_server(proc)
        hello, ingest, warm = gen["hello"], gen["ingest"], gen["warmup_ingest"]
        acked = [tuple(a) for a in warm["acked"] + ingest["acked"]]
        _log(f"verifying {len(acked)} acknowledged webhooks in the database")
        check = await _verify(url, channel_id, acked)
    finally:
        if proc is not None:
            _stop_server(proc)
        if db_name:
            await _admin(admin_url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            _log(f"dropped database {db_name}")
        shutil.rmtree(tmp, ignore_errors=True)
    stored_ratio = check["stored"] / len(acked) if acked else 0.0
    accepted = ingest["rps"]
    return {
        "bench": "ingest",
        "accepted_per_s": round(accepted, 1),
        "p50_ms": round(ingest["p50_ms"], 2),
        "p99_ms": round(ingest["p99_ms"], 2),
        "max_ms": round(ingest["max_ms"], 1),
        "stored_ratio": round(stored_ratio, 6),
        "duplicates": check["duplicates"],
        "hello_rps": round(hello["rps"], 1),
        "hello_p99_ms": round(hello["p99_ms"], 2),
        "ratio_to_hello": round(accepted / hello["rps"], 3) if hello["rps"] else None,
        "acked": len(acked),
        "errors": ingest["errors"] + warm["errors"],
        "bad_status": ingest["bad_status"],
        "stored_by_kind": check["stored_by_kind"],
        "cpu_s": {
            "ingest": {
                **ingest["cpu_s"],
                "loadgen": round(ingest["loadgen_cpu_s"], 2),
                "wall": round(ingest["elapsed"], 2),
            },
            "hello": {
                **hello["cpu_s"],
                "loadgen": round(hello["loadgen_cpu_s"], 2),
                "wall": round(hello["elapsed"], 2),
            },
        },
        "config": {
            "seconds": seconds,
            "hello_seconds": hello_seconds,
            "warmup_seconds": warmup_seconds,
            "concurrency": concurrency,
            "database": kind,
            "web_processes": web_processes,
            "cpu_count": os.cpu_count(),
            "mix": {
                "per_unit": "1 inbound text + sent/delivered/read statuses (3 per outbound message)",
                "inbound_share": 0.25,
                "redeliver_every_units": REDELIVER_EVERY,
                "senders": SENDERS,
                "known_senders": KNOWN_SENDERS,
                "outbound_preinserted": n_outbound,
                "statuses_for": "pre-inserted outbound messages (state sent); beyond them: pending statuses",
            },
            "loadgen": "1 process, raw asyncio/uvloop HTTP/1.1 keep-alive, bodies pre-signed",
            "server": f"tresen serve --no-worker --workers {web_processes} (uvicorn)",
        },
    }


if __name__ == "__main__":
    if "--loadgen" in sys.argv:
        _loadgen_main()
    else:
        print(
            "usage: python -m tresen.bench.ingest --loadgen  (config JSON on stdin)",
            file=sys.stderr,
        )
        sys.exit(2)
