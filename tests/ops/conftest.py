"""Fixtures of the operations tests: empty PostgreSQL databases and `tresen` processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import PG_ADMIN_URL


async def _admin(sql: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture
def empty_postgres(postgres_url: str) -> Iterator[str]:
    """A new, never migrated PostgreSQL database (dropped afterwards)."""
    name = f"tresen_ops_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.asynccontextmanager
async def another_postgres() -> AsyncIterator[str]:
    """Inside a running loop: a new, never migrated PostgreSQL database (dropped afterwards)."""
    name = f"tresen_ops_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tresen_env(**settings: str) -> dict[str, str]:
    """This environment without any TRESEN_ setting, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESEN_")}
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env | {"TRESEN_" + k.upper(): v for k, v in settings.items()}


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """`tresen ARGS` as its own process."""
    return subprocess.Popen(
        [sys.executable, "-m", "tresen", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
