"""`tresen bench topic-import`: import N subscribers from one CSV file, timed in process.

Fills a fresh database (a SQLite file in a temp dir, or a new `tresen_bench_<random>` database
on the PostgreSQL server `database_url` names, dropped afterwards) through the real migrations
with a workspace, a WhatsApp channel and a topic, generates a CSV of N consenting subscribers
(every fourth one also consents to link tracking) and times `import_subscribers` including the
commit. Then it imports the same file again (nothing to write: every row is already there).
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tresen.benchmarks.scratch import create_scratch
from tresen.db.engine import make_engine, make_sessionmaker
from tresen.db.migrate import upgrade_to_head

HEADER = (
    "channel,address,name,language,consent_source,consent_at,consent_text_version,link_tracking"
)
NAMES = ["Anna", "Jürgen", "Özlem", "Björn", "Mia", "Lukas", "Grete", "Paul", "Ümit", "Ole"]
SECRET_KEY = "bench-secret-key"


def _log(msg: str) -> None:
    print(f"[bench topic_import] {msg}", file=sys.stderr, flush=True)


def subscriber_csv(rows: int) -> bytes:
    """A valid import file of `rows` WhatsApp subscribers with proof of consent."""
    lines = [HEADER]
    for i in range(rows):
        lines.append(
            f"whatsapp,+49 151 {i:08d},{NAMES[i % len(NAMES)]} {i},{'en' if i % 5 == 0 else 'de'},"
            f"Newsletter form,2025-03-01T10:{i % 60:02d}:00+01:00,v3,{'yes' if i % 4 == 0 else 'no'}"
        )
    return ("\n".join(lines) + "\n").encode()


async def run_topic_import_bench(*, rows: int, database_url: str = "") -> dict[str, Any]:
    """Run the benchmark and return its figures (one JSON-able dict)."""
    from tresen.broadcast import importer, topics
    from tresen.channels.manage import add_channel, default_workspace

    tmp = Path(tempfile.mkdtemp(prefix="tresen-bench-import-"))
    scratch = await create_scratch(database_url, tmp, secrets.token_hex(4))
    if scratch.name:
        _log(f"created PostgreSQL database {scratch.name}")
    engine = make_engine(scratch.url)
    sessions = make_sessionmaker(engine)
    data = subscriber_csv(rows)
    try:
        await upgrade_to_head(engine)
        async with sessions() as session, session.begin():
            ws = await default_workspace(session, "Benchladen")
            await add_channel(
                session,
                ws.id,
                "whatsapp",
                "Bench WhatsApp",
                {
                    "phone_number_id": "1",
                    "app_secret": "a",
                    "verify_token": "v",
                    "access_token": "t",
                },
            )
            topic = await topics.create_topic(session, ws.id, "neuigkeiten", "Neuigkeiten")
        timings: list[float] = []
        reports: list[importer.ImportReport] = []
        for run in ("first", "again"):
            _log(f"importing {rows} rows ({run})")
            began = time.perf_counter()
            async with sessions() as session, session.begin():
                reports.append(
                    await importer.import_subscribers(
                        session,
                        secret_key=SECRET_KEY,
                        workspace_id=ws.id,
                        topic=topic,
                        data=data,
                    )
                )
            timings.append(time.perf_counter() - began)
    finally:
        await engine.dispose()
        await scratch.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    first, again = reports
    return {
        "bench": "topic_import",
        "rows": rows,
        "imported": first.imported,
        "refused": len(first.problems),
        "seconds": round(timings[0], 3),
        "rows_per_s": round(rows / timings[0], 1),
        "reimport_seconds": round(timings[1], 3),
        "reimport_already": again.already,
        "database": scratch.kind,
    }
