"""Fixtures: the same tests run on SQLite and on PostgreSQL; markers and the quick tier."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import hypothesis
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.examples import QUICK_ENV
from tresen.db.engine import make_engine
from tresen.db.migrate import alembic_config, upgrade_to_head
from tresen.db.tables import Base
from tresen.runtime import Runtime
from tresen.settings import Settings

PG_ADMIN_URL = os.environ.get(
    "TRESEN_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
QUICK_LEAVES_OUT = ("postgres", "slow", "browser", "bench")
"""The markers of the tests `--quick` leaves out."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick",
        action="store_true",
        help="leave out tests marked " + ", ".join(QUICK_LEAVES_OUT) + " (see docs/testing.md)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Tell property tests (tests/examples.py) which tier runs, before their modules load."""
    os.environ[QUICK_ENV] = "1" if config.getoption("quick") else "0"
    if config.getoption("quick"):
        hypothesis.settings.register_profile("quick", max_examples=20)
        hypothesis.settings.load_profile("quick")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: one worker per core and one more for the whole suite, one process for a chosen
    subset. The extra worker fills the time the others wait on processes, browsers and providers'
    rate limits (a fifth of the CPU was idle with one per core; docs/testing.md)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return 0
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark PostgreSQL, browser and bench tests by what they use; `--quick` leaves them out."""
    for item in items:
        params = getattr(item, "callspec", None)
        if params is not None and params.params.get("database_url") == "postgres":
            item.add_marker(pytest.mark.postgres)
        if "chromium_path" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
        if item.path.name.startswith("test_bench_"):
            item.add_marker(pytest.mark.bench)
    if not config.getoption("quick"):
        return
    kept, left_out = [], []
    for item in items:
        slow = any(item.get_closest_marker(name) for name in QUICK_LEAVES_OUT)
        (left_out if slow else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


async def _pg_reachable() -> str | None:
    engine = create_async_engine(PG_ADMIN_URL)
    try:
        async with asyncio.timeout(5):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await engine.dispose()


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """Commands run in-process (serve, worker, privacy) set up logging; later tests start clean."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {name: logging.getLogger(name).level for name in ("tresen", "httpx", "httpcore")}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, named_level in named.items():
        logging.getLogger(name).setLevel(named_level)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database per session, so per xdist worker (skipped when no server, failed under CI=true)."""
    problem = asyncio.run(_pg_reachable())
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL at {PG_ADMIN_URL} is not reachable: {problem}")
        pytest.skip(
            f"PostgreSQL not reachable at {PG_ADMIN_URL} ({problem}); set TRESEN_TEST_POSTGRES_URL"
        )
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"tresen_test_{worker}_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    async def prepare() -> None:
        engine = create_async_engine(url)
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()

    asyncio.run(prepare())
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


HEAD_REVISION = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
_TABLES = ", ".join(f"'{t.name}'" for t in reversed(Base.metadata.sorted_tables))
EMPTY_EVERY_TABLE = (
    "DO $$ DECLARE t text; BEGIN"
    f" FOREACH t IN ARRAY ARRAY[{_TABLES}] LOOP EXECUTE format('DELETE FROM %I', t); END LOOP;"
    " END $$"
)
"""One round trip; DELETE, as TRUNCATE takes ~1.6 s on these tiny tables and DELETE ~0.03 s."""


async def reset_postgres(url: str) -> None:
    """Empty every table; migrate first if a test left the schema below head."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        if version != HEAD_REVISION:
            await upgrade_to_head(engine)
        async with engine.begin() as conn:
            # Resetting the test database, not product behaviour: the append-only triggers
            # (consent proof, audit log) and foreign keys are off for this transaction.
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.exec_driver_sql(EMPTY_EVERY_TABLE)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; each test's database starts as a copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "tresen.db"

    async def migrate() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()

    asyncio.run(migrate())
    assert not path.with_name(path.name + "-wal").exists(), "the template's WAL was not merged"
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file path (not created yet) or a migrated PostgreSQL one."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'tresen.db'}"
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(reset_postgres(url))
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own data dir and database."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-key",
        base_url="http://testserver",
        max_webhook_bytes=256_000,
        job_lease_seconds=5.0,
        send_timeout_seconds=2.0,
        consent_first=False,  # tests of the consent flow turn it on themselves
        mailbox_poll_seconds=0,  # e-mail tests poll explicitly
        outbound_allow_hosts="127.0.0.1,localhost",  # the simulators; SSRF tests narrow it
    )


@pytest.fixture
async def runtime(settings: Settings, sqlite_template: Path) -> AsyncIterator[Runtime]:
    """A runtime on a migrated database (a new SQLite file is a copy of the migrated template)."""
    url = settings.effective_database_url
    fresh_sqlite = url.startswith("sqlite") and not Path(make_url(url).database or "").exists()
    if fresh_sqlite:
        path = Path(make_url(url).database or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sqlite_template, path)
    rt = Runtime.create(settings)
    if url.startswith("sqlite") and not fresh_sqlite:
        await upgrade_to_head(rt.engine)  # PostgreSQL: `database_url` left it at head
    yield rt
    await rt.close()
