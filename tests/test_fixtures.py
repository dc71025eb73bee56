"""The test databases themselves: a copied SQLite template and a reset PostgreSQL start alike."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from tests import helpers
from tests.conftest import HEAD_REVISION, reset_postgres
from tresen.db.migrate import alembic_config
from tresen.privacy import audit
from tresen.runtime import Runtime


async def _version(runtime: Runtime) -> str | None:
    async with runtime.engine.connect() as conn:
        return await conn.scalar(text("SELECT version_num FROM alembic_version"))


async def test_a_test_database_starts_migrated_and_empty(runtime: Runtime) -> None:
    assert await _version(runtime) == HEAD_REVISION
    assert set((await helpers.count_rows(runtime)).values()) == {0}


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_postgres_reset_empties_append_only_tables_and_migrates_back_to_head(
    runtime: Runtime, postgres_url: str
) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await helpers.seed_token(runtime, ws)
    async with runtime.sessions() as session, session.begin():
        await audit.record(session, ws, "test.reset")
    filled = await helpers.count_rows(runtime)
    assert filled["audit_log"] >= 1 and filled["workspaces"] == 1  # token creation is audited too
    await reset_postgres(postgres_url)
    assert set((await helpers.count_rows(runtime)).values()) == {0}

    cfg = alembic_config(postgres_url)

    def downgrade(connection: object) -> None:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0002")

    async with runtime.engine.begin() as connection:
        await connection.run_sync(downgrade)
    await runtime.engine.dispose()
    assert await _version(runtime) != HEAD_REVISION

    await reset_postgres(postgres_url)
    await runtime.engine.dispose()
    assert await _version(runtime) == HEAD_REVISION
    assert set((await helpers.count_rows(runtime)).values()) == {0}
