"""`tresen bench ingest`: signed provider webhooks of one channel kind against a real server.

The parent process prepares a fresh database (a SQLite file in a temp dir, or a new PostgreSQL
database next to the one `database_url` names), seeds one channel of the chosen kind (config
from its `Traffic` in `tresen.benchmarks.traffic`), contacts and, where the provider reports
deliveries, outbound messages; starts `tresen serve` as a subprocess and runs the load
generator in another process (`python -m tresen.benchmarks.ingest --loadgen`, config on stdin, one
JSON result in a file). The generator speaks HTTP/1.1 keep-alive on raw asyncio transports;
every body is built and signed before its phase starts. The server parses them with the
channel's own code. After the load the parent checks in the database that every webhook
answered 200 left its mark (each request carries its checks) and that no provider id was
stored twice.

Traffic, per generator connection and "unit" u (one outbound message per unit): one inbound
text message (unique id, sender drawn from `SENDERS` addresses of which `KNOWN_SENDERS` exist
before the run) plus that channel's reports on outbound messages u, u-1, u-2 (see
`tresen.benchmarks.traffic`), so the statuses of one message arrive in order on one connection and
spaced apart. Outbound messages are pre-inserted in state `sent`; statuses for messages beyond
them land as pending statuses. Every `REDELIVER_EVERY`th unit re-posts another connection's
inbound webhook (a provider retry), which must be acknowledged and not stored twice.
"""

from __future__ import annotations

import asyncio
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from tresen.benchmarks.scratch import create_scratch
from tresen.benchmarks.traffic import (
    KNOWN_SENDERS,
    REDELIVER_EVERY,
    SENDERS,
    TRAFFIC,
    Request,
    Traffic,
    traffic_for,
)

MAX_PREBUILT_REQUESTS = 200_000
OUTBOUND_PER_SECOND = (
    2500  # pre-inserted outbound messages per benchmark second (up to 10k webhooks/s)
)
CHANNELS = tuple(TRAFFIC)


def _log(msg: str) -> None:
    print(f"[bench ingest] {msg}", file=sys.stderr, flush=True)


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

    def __init__(self, traffic: Traffic, w: int) -> None:
        self.traffic = traffic
        self.w = w
        self.requests: list[Request] = []
        self.pos = 0
        self.next_unit = 0

    def build_unit(self) -> None:
        self.requests += self.traffic.unit(self.w, self.next_unit, int(time.time()))
        self.next_unit += 1

    def prebuild(self, n: int) -> None:
        while len(self.requests) - self.pos < n:
            self.build_unit()

    def next(self) -> Request:
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
    """Run `concurrency` connections for `seconds`; next_request(w) gives (label, checks, bytes)."""
    loop = asyncio.get_running_loop()
    concurrency = cfg["concurrency"]
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    acked: list[tuple[str, list[Any]]] = []
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
            label, checks, data = next_request(w)
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
                    acked.append((label, checks))
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
    traffic = traffic_for(cfg)
    streams = [_Stream(traffic, w) for w in range(concurrency)]
    budget = min(
        MAX_PREBUILT_REQUESTS, int(cfg["prebuild_rate"] * (cfg["seconds"] + cfg["warmup_seconds"]))
    )
    for s in streams:
        s.prebuild(max(8, budget // concurrency))
    _log(f"prebuilt {sum(len(s.requests) for s in streams)} signed webhooks")
    server_pids, pg = cfg["server_pids"], cfg["postgres"]

    def hello(_w: int) -> Request:
        return ("ping", [], ping)

    def webhook(w: int) -> Request:
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
    # A file, not stdout: a pipe cut the result short after 64 KiB now and then.
    Path(cfg["result_path"]).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# Parent: database, server, verification


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _seed(url: str, traffic: Traffic, n_outbound: int) -> tuple[str, str]:
    """Migrate, add the channel, known contacts with conversations and outbound messages."""
    from sqlalchemy import Table, update

    from tresen.channels.manage import add_channel, default_workspace, webhook_url
    from tresen.db.engine import make_engine, make_sessionmaker
    from tresen.db.migrate import upgrade_to_head
    from tresen.db.tables import ChannelRow, Contact, ContactIdentity, Conversation, Message
    from tresen.db.types import utcnow
    from tresen.domain.ids import new_id

    engine = make_engine(url)
    try:
        await upgrade_to_head(engine)
        sessions = make_sessionmaker(engine)
        async with sessions() as session, session.begin():
            ws = await default_workspace(session, "Benchladen")
            row = await add_channel(
                session, ws.id, traffic.kind, f"Bench {traffic.kind}", traffic.channel_config()
            )
            channel_id, workspace_id = row.id, ws.id
            extra = traffic.config_after_add(webhook_url(f"http://127.0.0.1:{traffic.port}", row))
            if extra:
                await session.execute(
                    update(ChannelRow)
                    .where(ChannelRow.id == channel_id)
                    .values(config={**row.config, **extra})
                )
        now = utcnow()
        contacts, identities, conversations = [], [], []
        for n in range(KNOWN_SENDERS):
            cid, iid, vid = new_id(), new_id(), new_id()
            contacts.append(
                {
                    "id": cid,
                    "workspace_id": workspace_id,
                    "display_name": traffic.name(n),
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
                    "address": traffic.address(n),
                    "display_name": traffic.name(n),
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
            rows = []
            for o in range(start, min(n_outbound, start + chunk)):
                sent = datetime.fromtimestamp(traffic.out_sent_ms(o) / 1000, UTC)
                rows.append(
                    {
                        "id": traffic.out_ref(o),
                        "workspace_id": workspace_id,
                        "conversation_id": conversations[traffic.recipient(o)]["id"],
                        "channel_id": channel_id,
                        "direction": "outbound",
                        "sender_kind": "agent",
                        "content_kind": "text",
                        "body": "Ihre Bestellung ist unterwegs.",
                        "payload": {},
                        "provider_message_id": traffic.out_id(o),
                        "state": "sent",
                        "created_at": sent,
                        "sent_at": sent,
                        "send_attempts": 1,
                    }
                )
            async with sessions() as session, session.begin():
                await session.execute(cast(Table, Message.__table__).insert(), rows)
        return channel_id, workspace_id
    finally:
        await engine.dispose()


_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}


async def _verify(
    url: str, channel_id: str, traffic: Traffic, n_outbound: int, acked: list[tuple[str, Any]]
) -> dict[str, Any]:
    """How many acked webhooks the database reflects (every check of each); ids stored twice."""
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
                r[0]: _RANK.get(r[1], -1)
                for r in await conn.execute(
                    text(
                        "SELECT provider_message_id, state FROM messages "
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
    # Per (recipient address, state): the earliest send time (ms) of a pre-inserted message to
    # that recipient not yet in that state; a watermark holds when it lies before that time.
    behind: dict[tuple[str, str], int] = {}
    if any(c[0] == "wm" for _, checks in acked for c in checks):
        for o in range(n_outbound):
            rank = outbound.get(traffic.out_id(o), -1)
            addr, sent = traffic.address(traffic.recipient(o)), traffic.out_sent_ms(o)
            for state in ("delivered", "read"):
                if rank < _RANK[state]:
                    key = (addr, state)
                    behind[key] = min(behind.get(key, sent), sent)
    stored = 0
    kinds = {
        "inbound": 0,
        "status_noop": 0,
        "status_applied": 0,
        "status_pending": 0,
        "watermark": 0,
        "missing": 0,
    }
    for _label, checks in acked:
        all_ok = True
        for check in checks:
            if check[0] == "in":
                ok = check[1] in inbound
                kinds["inbound"] += ok
            elif check[0] == "st":
                pmid, state = check[1], check[2]
                if pmid in outbound:
                    ok = outbound[pmid] >= _RANK[state]
                    noop = _RANK[state] <= _RANK["sent"]  # pre-inserted as sent
                    kinds["status_noop" if noop else "status_applied"] += ok
                else:
                    ok = (pmid, state) in pending
                    kinds["status_pending"] += ok
            else:
                addr, state, mark = check[1], check[2], check[3]
                ok = mark < behind.get((addr, state), mark + 1)
                kinds["watermark"] += ok
            kinds["missing"] += not ok
            all_ok = all_ok and ok
        stored += all_ok
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
            "TRESEN_OUTBOUND_ALLOW_HOSTS": "127.0.0.1",  # the simulators
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
    channel: str = "whatsapp",
    web_processes: int = 1,
    hello_seconds: float | None = None,
    warmup_seconds: float = 1.0,
    redeliver_every: int = REDELIVER_EVERY,
) -> dict[str, Any]:
    """Run the ingest benchmark for one channel kind and return its figures (one JSON-able dict)."""

    if channel not in TRAFFIC:
        raise ValueError(
            f"no benchmark traffic for channel {channel!r}; one of {', '.join(CHANNELS)}"
        )
    run = secrets.token_hex(4)
    tmp = Path(tempfile.mkdtemp(prefix="tresen-bench-ingest-"))
    scratch = await create_scratch(database_url, tmp, run)
    if scratch.name:
        _log(f"created PostgreSQL database {scratch.name}")
    url, kind = scratch.url, scratch.kind
    hello_seconds = hello_seconds if hello_seconds is not None else min(seconds, 10.0)
    port = _free_port()
    base_cfg = {
        "run": run,
        "channel": channel,
        "port": port,
        "concurrency": concurrency,
        "redeliver_every": redeliver_every,
        # Pre-inserted outbound messages count as sent an hour ago, one millisecond apart.
        "t0_ms": int(time.time() * 1000) - 3_600_000,
    }
    traffic = traffic_for(base_cfg)
    n_outbound = (
        int(OUTBOUND_PER_SECOND * (seconds + warmup_seconds)) if traffic.has_statuses else 0
    )
    proc = None
    try:
        _log(
            f"seeding {kind} database for {channel} "
            f"({KNOWN_SENDERS} contacts, {n_outbound} outbound messages)"
        )
        channel_id, _ = await _seed(url, traffic, n_outbound)
        traffic = traffic_for({**base_cfg, "channel_id": channel_id})
        _log(f"starting server on port {port} with {web_processes} web process(es)")
        proc = await _start_server(url, tmp, port, web_processes, tmp / "server.log")
        server_pids = [proc.pid, *_children(proc.pid)]
        result_path = tmp / "loadgen.json"
        cfg = {
            **base_cfg,
            "result_path": str(result_path),
            "channel_id": channel_id,
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
            "tresen.benchmarks.ingest",
            "--loadgen",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,  # stdout is the parent's one JSON line
        )
        await child.communicate(json.dumps(cfg).encode())
        if child.returncode != 0:
            raise RuntimeError(f"load generator failed with exit code {child.returncode}")
        gen = json.loads(result_path.read_text())
        _stop_server(proc)
        hello, ingest, warm = gen["hello"], gen["ingest"], gen["warmup_ingest"]
        acked = [tuple(a) for a in warm["acked"] + ingest["acked"]]
        _log(f"verifying {len(acked)} acknowledged webhooks in the database")
        check = await _verify(url, channel_id, traffic, n_outbound, acked)
    finally:
        if proc is not None:
            _stop_server(proc)
        await scratch.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    stored_ratio = check["stored"] / len(acked) if acked else 0.0
    by_label: dict[str, int] = {}
    for label, _ in acked:
        by_label[label] = by_label.get(label, 0) + 1
    inbound_share = (by_label.get("in", 0) + by_label.get("redelivery", 0)) / max(1, len(acked))
    accepted = ingest["rps"]
    return {
        "bench": "ingest",
        "channel": channel,
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
        "inbound_rows": check["inbound_rows"],
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
            "channel": channel,
            "web_processes": web_processes,
            "cpu_count": os.cpu_count(),
            "mix": {
                "per_unit": traffic.mix,
                "acked_by_label": by_label,
                "inbound_share": round(inbound_share, 3),
                "redeliver_every_units": redeliver_every,
                "senders": SENDERS,
                "known_senders": KNOWN_SENDERS,
                "outbound_preinserted": n_outbound,
                "statuses_for": (
                    "pre-inserted outbound messages (state sent); beyond them: pending statuses"
                    if traffic.has_statuses
                    else None
                ),
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
            "usage: python -m tresen.benchmarks.ingest --loadgen  (config JSON on stdin, "
            "result JSON to cfg['result_path'])",
            file=sys.stderr,
        )
        sys.exit(2)
