"""`tresen privacy rotate-key` re-seals media in the file store of either kind (data dir or an
S3 bucket on moto): resumable, skipping what is done, never bringing back an erased file."""

from __future__ import annotations

import asyncio
import os
import secrets
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.ops.s3server import make_bucket, s3_server, s3_settings
from tresen.cli import app
from tresen.db import crypto
from tresen.media import store as media_store
from tresen.privacy import encryption
from tresen.runtime import Runtime
from tresen.settings import Settings
from tresen.storage import Fetched, FileStore, LocalStore, S3Store

K1 = f"k1={crypto.new_key()}"
K2 = f"k2={crypto.new_key()}"
K3 = f"k3={crypto.new_key()}"
PDF = b"%PDF-1.4 Geheimbrief " * 40


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """One moto server for the module."""
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def settings(settings: Settings, s3_endpoint: str, request: pytest.FixtureRequest) -> Settings:
    """The test's settings with files in the data dir, or in a fresh bucket under a prefix."""
    if request.param == "local":
        return settings
    bucket = f"rotate-{secrets.token_hex(4)}"
    make_bucket(s3_endpoint, bucket)
    return settings.with_overrides(**s3_settings(s3_endpoint, bucket, prefix="shop/"))


@pytest.fixture
def keys() -> Iterator[Any]:
    """Switch the keyring (as a restart with new TRESEN_ENCRYPTION_KEYS would)."""
    yield lambda value: crypto.use(crypto.parse_keys(value))
    crypto.use(None)


def _seed(files: FileStore, count: int) -> list[str]:
    """`count` media files sealed under the keyring in use."""
    return [
        media_store.save(files, "ws1", f"m{i:03d}", PDF + bytes([i]), None, 10**6).path
        for i in range(count)
    ]


class Counting:
    """A store that counts reads and writes (and can fail or erase on cue)."""

    def __init__(self, inner: FileStore) -> None:
        self.inner = inner
        self.fetched: list[str] = []
        self.replaced: list[str] = []
        self.fail_after: int | None = None
        self.erase_on_fetch = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def fetch(self, key: str) -> Fetched | None:
        got = self.inner.fetch(key)
        self.fetched.append(key)
        if self.erase_on_fetch:
            self.inner.delete(key)  # erasure between the read and the write
        return got

    def replace(self, key: str, data: bytes, version: str) -> bool:
        if self.fail_after is not None and len(self.replaced) >= self.fail_after:
            raise OSError("killed mid-rotation")
        done = self.inner.replace(key, data, version)
        self.replaced.append(key)
        return done


def test_rotation_reseals_media_and_the_old_key_can_go(runtime: Runtime, keys: Any) -> None:
    files = runtime.files
    keys(K1)
    paths = _seed(files, 5)
    staged = "media/incoming/mail-0"
    files.put(staged, crypto.seal_bytes(b"staged attachment"))
    plain = "media/ws1/pl/plain"
    files.put(plain, b"a file from before encryption")
    keys(K3)
    foreign = "media/ws1/zz/foreign"  # sealed by a key this install does not have
    foreign_bytes = crypto.seal_bytes(PDF)
    files.put(foreign, foreign_bytes)
    files.put("exports/e1.zip", b"PK not media")  # outside media/: never touched
    before = {p: files.get(p) for p in paths}
    assert all(crypto.file_key_id(b or b"") == "k1" for b in before.values())

    keys(f"{K2},{K1}")
    counting = Counting(files)
    counts = encryption.rotate_files(counting, crypto.active())  # type: ignore[arg-type]
    assert (counts.rewritten, counts.current, counts.gone, counts.failed) == (7, 0, 0, 1)
    assert counts.failed_keys == [foreign]
    assert files.get(foreign) == foreign_bytes
    assert files.get("exports/e1.zip") == b"PK not media"
    for p in [*paths, staged, plain]:
        stored = files.get(p) or b""
        assert crypto.file_key_id(stored) == "k2", p
        assert PDF not in stored and b"from before" not in stored

    again = Counting(files)
    rerun = encryption.rotate_files(again, crypto.active())  # type: ignore[arg-type]
    assert (rerun.rewritten, rerun.current, rerun.failed) == (0, 7, 1)
    # Files already under the new key are recognised by their first bytes: not read whole,
    # not written again (only the foreign one is read, and left alone).
    assert again.fetched == [foreign] and again.replaced == []

    keys(K2)  # the old key is dropped from TRESEN_ENCRYPTION_KEYS: everything still opens
    for i, p in enumerate(paths):
        assert media_store.load(files, p) == PDF + bytes([i])
    assert media_store.load(files, staged) == b"staged attachment"
    assert media_store.load(files, plain) == b"a file from before encryption"
    with pytest.raises(crypto.DecryptionError):
        media_store.load(files, foreign)


def test_an_interrupted_rotation_resumes_where_it_stopped(runtime: Runtime, keys: Any) -> None:
    keys(K1)
    paths = _seed(runtime.files, 6)
    keys(f"{K2},{K1}")
    crashing = Counting(runtime.files)
    crashing.fail_after = 2
    with pytest.raises(OSError, match="killed"):
        encryption.rotate_files(crashing, crypto.active())  # type: ignore[arg-type]
    under = [crypto.file_key_id(runtime.files.get(p) or b"") for p in paths]
    assert sorted(under) == ["k1"] * 4 + ["k2"] * 2

    resumed = Counting(runtime.files)
    counts = encryption.rotate_files(resumed, crypto.active())  # type: ignore[arg-type]
    assert (counts.rewritten, counts.current) == (4, 2)
    assert len(resumed.replaced) == 4
    keys(K2)
    assert [media_store.load(runtime.files, p) for p in paths] == [
        PDF + bytes([i]) for i in range(6)
    ]


def test_a_file_erased_during_rotation_stays_erased(runtime: Runtime, keys: Any) -> None:
    keys(K1)
    [path] = _seed(runtime.files, 1)
    keys(f"{K2},{K1}")
    erasing = Counting(runtime.files)
    erasing.erase_on_fetch = True
    counts = encryption.rotate_files(erasing, crypto.active())  # type: ignore[arg-type]
    assert (counts.rewritten, counts.gone) == (0, 1)
    assert runtime.files.get(path) is None
    assert list(runtime.files.listing("media/")) == []


async def _cli(monkeypatch: pytest.MonkeyPatch, settings: Settings, encryption_keys: str) -> Result:
    for name in ("TRESEN_REDIS_URL", "TRESEN_STORAGE", "TRESEN_S3_BUCKET", "TRESEN_S3_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRESEN_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("TRESEN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TRESEN_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("TRESEN_ENCRYPTION_KEYS", encryption_keys)
    if settings.storage == "s3":
        for name, value in s3_settings(
            settings.s3_endpoint_url, settings.s3_bucket, settings.s3_prefix
        ).items():
            monkeypatch.setenv(f"TRESEN_{name.upper()}", value)
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: CliRunner().invoke(app, ["privacy", "rotate-key"])
    )


async def test_the_command_rotates_the_store_and_names_files_it_cannot_open(
    runtime: Runtime, keys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys(K1)
    paths = _seed(runtime.files, 3)
    assert await encryption.stale_count(runtime.sessions, runtime.files) == 0
    keys(f"{K2},{K1}")
    assert await encryption.stale_count(runtime.sessions, runtime.files) == 3

    done = await _cli(monkeypatch, runtime.settings, f"{K2},{K1}")
    assert done.exit_code == 0, done.output
    assert "3 files (0 already under the key, 0 deleted meanwhile)" in done.output
    assert await encryption.stale_count(runtime.sessions, runtime.files) == 0
    again = await _cli(monkeypatch, runtime.settings, f"{K2},{K1}")
    assert again.exit_code == 0 and "0 files (3 already under the key" in again.output
    if runtime.settings.storage == "s3":
        assert isinstance(runtime.files, S3Store)
        assert not (runtime.settings.data_dir / "media").exists()

    keys(K3)
    runtime.files.put("media/ws1/zz/foreign", crypto.seal_bytes(PDF))
    refused = await _cli(monkeypatch, runtime.settings, K2)
    assert refused.exit_code == 1
    assert "1 files do not open" in refused.output and "media/ws1/zz/foreign" in refused.output
    keys(K2)
    assert [media_store.load(runtime.files, p) for p in paths] == [
        PDF + bytes([i]) for i in range(3)
    ]


def test_rotation_holds_one_file_in_memory_at_a_time(tmp_path: Path, keys: Any) -> None:
    files = LocalStore(tmp_path / "data")
    keys(K1)
    size, count = 256 * 1024, 24  # 6 MB in all
    for i in range(count):
        files.put(f"media/ws/{i:02x}/m{i}", crypto.seal_bytes(os.urandom(size)))
    keys(f"{K2},{K1}")
    tracemalloc.start()
    try:
        counts = encryption.rotate_files(files, crypto.active())  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert counts.rewritten == count
    assert peak < 6 * size, peak  # a few copies of one file (read, plaintext, sealed), not 24
