"""Processes with different data dirs share files through one S3 bucket (moto on loopback)."""

from __future__ import annotations

import io
import os
import secrets
import time
import zipfile
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.helpers import worker_running
from tests.ops.s3server import make_bucket, s3_server, s3_settings
from tests.pipeline.stack import running_stack
from tests.pipeline.test_media_e2e import PNG, _customer_sends_image, _settled, _signed_in
from tresen.db.tables import Contact, Conversation
from tresen.inbox import routing
from tresen.media import store
from tresen.privacy import erasure, retention
from tresen.privacy.export import export_to_file
from tresen.runtime import Runtime
from tresen.settings import Settings
from tresen.storage import S3Store


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """One moto server for the module."""
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def settings(settings: Settings, s3_endpoint: str) -> Settings:
    """The test's settings, with files in a fresh bucket."""
    bucket = f"shared-{secrets.token_hex(4)}"
    make_bucket(s3_endpoint, bucket)
    return settings.with_overrides(**s3_settings(s3_endpoint, bucket, prefix="shop/"))


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


async def test_media_a_worker_stored_is_served_by_a_web_process_with_another_data_dir(
    runtime: Runtime, tmp_path: Path
) -> None:
    worker = Runtime.create(runtime.settings.with_overrides(data_dir=tmp_path / "worker-data"))
    assert worker.settings.data_dir != runtime.settings.data_dir
    assert isinstance(runtime.files, S3Store) and isinstance(worker.files, S3Store)
    try:
        async with running_stack(runtime, worker=False) as stack, worker_running(worker):
            conv = await _customer_sends_image(stack, PNG)
            [media] = await _settled(runtime)
            assert media.state == store.STORED, media.reason
            # The object is in the bucket (under the install's prefix), on neither disk.
            assert runtime.files.get(media.path or "") == PNG
            assert _files_under(runtime.settings.data_dir / "media") == []
            assert _files_under(worker.settings.data_dir / "media") == []

            agent = await _signed_in(
                stack.base_url, runtime, media.workspace_id, "a@laden.test", "admin"
            )
            async with aclosing(agent):
                shown = await agent.get(f"/inbox/media/{media.id}")
                assert shown.status_code == 200, shown.text
                assert shown.content == PNG
                assert shown.headers["content-type"] == "image/png"
                assert shown.headers["x-content-type-options"] == "nosniff"
                other = await _signed_in(
                    stack.base_url, runtime, media.workspace_id, "b@laden.test", "agent"
                )
                async with runtime.sessions() as session, session.begin():
                    team = await routing.add_team(session, media.workspace_id, "Werkstatt")
                    await session.execute(
                        update(Conversation).where(Conversation.id == conv).values(team_id=team.id)
                    )
                async with aclosing(other):
                    # Same permission rule as local files: the conversation is not hers.
                    assert (await other.get(f"/inbox/media/{media.id}")).status_code == 403

            async with runtime.sessions() as session:
                contact_id = await session.scalar(select(Contact.id))
            assert contact_id is not None
            exported = await export_to_file(
                runtime.sessions,
                workspace_id=media.workspace_id,
                contact_id=contact_id,
                data_dir=runtime.settings.data_dir,
                files=runtime.files,
                actor_id=None,
                via="test",
            )
            with zipfile.ZipFile(io.BytesIO(exported.read_bytes())) as zf:
                in_zip = [n for n in zf.namelist() if n.startswith("media/")]
                assert len(in_zip) == 1 and zf.read(in_zip[0]) == PNG
            exported.unlink()

            # Erasure in the web process deletes the object the worker wrote.
            async with runtime.sessions() as session:
                report = await erasure.erase(
                    runtime.engine,
                    session,
                    secret_key=runtime.settings.secret_key,
                    files=runtime.files,
                    workspace_id=media.workspace_id,
                    contact_id=contact_id,
                    actor_id=None,
                    via="test",
                )
            assert report.files_removed >= 1
            assert runtime.files.get(media.path or "") is None
            assert list(runtime.files.listing("media/")) == []
    finally:
        await worker.close()


async def test_retention_sweeps_left_export_zips_from_local_disk_also_on_s3(
    runtime: Runtime,
) -> None:
    exports = runtime.settings.data_dir / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    left = exports / "01CRASHEDEXPORT.zip"
    left.write_bytes(b"PK")
    fresh = exports / "01RUNNINGEXPORT.zip"
    fresh.write_bytes(b"PK")
    old = time.time() - 3 * 24 * 3600
    os.utime(left, (old, old))
    result = await retention.run(
        runtime.sessions,
        runtime.settings.secret_key,
        runtime.files,
        data_dir=runtime.settings.data_dir,
    )
    assert not left.exists() and fresh.exists()
    assert result.orphan_files == 1
