"""The file store: the same behaviour on the data dir and on an S3-compatible server (moto)."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.s3server import SECRET_KEY, make_bucket, s3_server, s3_settings
from tresen.db import crypto
from tresen.media import store as media_store
from tresen.ops.backup import BackupError, backup, restore
from tresen.ops.doctor import ERROR, OK, check_storage
from tresen.settings import Settings, SettingsError, load_settings
from tresen.storage import FileStore, LocalStore, S3Store, StorageError, open_store


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """One moto server for the module's tests (each test uses its own bucket)."""
    with s3_server() as endpoint:
        yield endpoint


def _bucket(endpoint: str) -> str:
    name = f"tresen-{secrets.token_hex(4)}"
    make_bucket(endpoint, name)
    return name


@pytest.fixture(params=["local", "s3"])
def files(request: pytest.FixtureRequest, tmp_path: Path, s3_endpoint: str) -> FileStore:
    """A fresh store of each kind."""
    if request.param == "local":
        return open_store(Settings(data_dir=tmp_path / "data"))
    values = s3_settings(s3_endpoint, _bucket(s3_endpoint), prefix="install-a/")
    return open_store(Settings(data_dir=tmp_path / "data", **values))  # type: ignore[arg-type]


def test_put_get_list_delete(files: FileStore) -> None:
    assert files.get("media/ws/ab/m1") is None
    files.put("media/ws/ab/m1", b"first")
    files.put("media/ws/ab/m1", b"second")  # replaced whole
    files.put("media/ws/cd/m2", b"x" * 10)
    files.put("exports/e1.zip", b"zip")
    assert files.get("media/ws/ab/m1") == b"second"
    listed = {o.key: o.size for o in files.listing("media/")}
    assert listed == {"media/ws/ab/m1": 6, "media/ws/cd/m2": 10}
    assert all(o.modified > 0 for o in files.listing("media/"))
    assert files.delete("media/ws/ab/m1")
    assert files.get("media/ws/ab/m1") is None
    assert [o.key for o in files.listing("exports/")] == ["exports/e1.zip"]
    assert files.check() == "ok"


def test_head_and_fetch_read_what_get_reads(files: FileStore) -> None:
    files.put("media/ws/ab/m1", b"0123456789")
    files.put("media/ws/ab/empty", b"")
    assert files.head("media/ws/ab/m1", 4) == b"0123"
    assert files.head("media/ws/ab/empty", 4) == b""
    assert files.head("media/ws/ab/none", 4) is None
    fetched = files.fetch("media/ws/ab/m1")
    assert fetched is not None and fetched.data == b"0123456789" and fetched.version
    assert files.fetch("media/ws/ab/none") is None
    assert files.fetch("../secret_key") is None


@pytest.mark.parametrize(
    "key", ["../secret_key", "media/../../etc/passwd", "/etc/passwd", "media/.hidden", "media", ""]
)
def test_keys_that_leave_the_store_are_refused(files: FileStore, key: str) -> None:
    with pytest.raises(ValueError, match="not a storage key"):
        files.put(key, b"x")
    assert files.get(key) is None
    assert files.delete(key) is False


def test_local_store_serves_paths_only_inside_the_data_dir(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "data")
    store.put("media/ws/ab/m1", b"x")
    assert store.local_path("media/ws/ab/m1") == (tmp_path / "data/media/ws/ab/m1").resolve()
    (tmp_path / "outside").write_text("no")
    (tmp_path / "data/media/ws/link").symlink_to(tmp_path / "outside")
    assert store.local_path("media/ws/link") is None


def test_s3_objects_carry_the_prefix_and_never_touch_the_data_dir(
    s3_endpoint: str, tmp_path: Path
) -> None:
    bucket = _bucket(s3_endpoint)
    a = open_store(Settings(data_dir=tmp_path / "a", **s3_settings(s3_endpoint, bucket, "a")))  # type: ignore[arg-type]
    b = open_store(Settings(data_dir=tmp_path / "b", **s3_settings(s3_endpoint, bucket, "b/")))  # type: ignore[arg-type]
    assert isinstance(a, S3Store) and a.prefix == "a/"
    a.put("media/ws/ab/m1", b"of install a")
    assert b.get("media/ws/ab/m1") is None, "another prefix is another install"
    raw = a.client.get_object(Bucket=bucket, Key="a/media/ws/ab/m1")["Body"].read()
    assert raw == b"of install a"
    assert not (tmp_path / "a").exists()
    assert a.local_path("media/ws/ab/m1") is None


def test_unreachable_bucket_is_named_without_secrets(s3_endpoint: str, tmp_path: Path) -> None:
    missing = open_store(
        Settings(data_dir=tmp_path, **s3_settings(s3_endpoint, "no-such-bucket"))  # type: ignore[arg-type]
    )
    problem = missing.check()
    assert problem.startswith("bucket no-such-bucket is not reachable"), problem
    with pytest.raises(StorageError) as raised:
        missing.put("media/ws/ab/m1", b"x")
    for text in (problem, str(raised.value), missing.describe()):
        assert SECRET_KEY not in text
    down = open_store(
        Settings(data_dir=tmp_path, **s3_settings("http://127.0.0.1:9", "b"))  # type: ignore[arg-type]
    )
    assert "not reachable" in down.check()


def test_storage_settings_are_checked() -> None:
    with pytest.raises(SettingsError, match="local or s3"):
        load_settings({"TRESEN_STORAGE": "nfs"}, toml_path=Path("/nonexistent.toml"))
    with pytest.raises(SettingsError, match="TRESEN_S3_BUCKET"):
        load_settings({"TRESEN_STORAGE": "s3"}, toml_path=Path("/nonexistent.toml"))
    with pytest.raises(SettingsError, match="TRESEN_S3_PREFIX"):
        load_settings(
            {"TRESEN_STORAGE": "s3", "TRESEN_S3_BUCKET": "b", "TRESEN_S3_PREFIX": "a/../b"},
            toml_path=Path("/nonexistent.toml"),
        )
    ok = load_settings(
        {"TRESEN_STORAGE": "s3", "TRESEN_S3_BUCKET": "b", "TRESEN_S3_PREFIX": "tresen/"},
        toml_path=Path("/nonexistent.toml"),
    )
    assert ok.storage == "s3" and ok.s3_bucket == "b"


def _sqlite_install(folder: Path, endpoint: str, bucket: str) -> Settings:
    folder.mkdir(parents=True)
    with sqlite3.connect(folder / "tresen.db") as db:
        db.execute("CREATE TABLE t (x TEXT)")
    return Settings(
        data_dir=folder,
        database_url=f"sqlite:///{folder / 'tresen.db'}",
        secret_key="backup-test-key",
        **s3_settings(endpoint, bucket),  # type: ignore[arg-type]
    )


def test_backup_on_s3_lists_the_objects_and_restore_checks_them(
    s3_endpoint: str, tmp_path: Path
) -> None:
    settings = _sqlite_install(tmp_path / "a", s3_endpoint, _bucket(s3_endpoint))
    open_store(settings).put("media/ws/ab/m1", b"x" * 100)
    report = backup(settings, tmp_path / "backup")
    text = (tmp_path / "backup" / "manifest.json").read_text()
    manifest = json.loads(text)
    assert report.objects == 1
    assert manifest["object_store"]["objects"] == [{"key": "media/ws/ab/m1", "bytes": 100}]
    assert manifest["object_store"]["location"].startswith(f"s3://{settings.s3_bucket}/")
    assert manifest["files"] == [] and SECRET_KEY not in text

    elsewhere = settings.with_overrides(
        data_dir=tmp_path / "b", database_url=f"sqlite:///{tmp_path / 'b' / 'tresen.db'}"
    )
    empty_bucket = elsewhere.with_overrides(s3_bucket=_bucket(s3_endpoint))
    with pytest.raises(BackupError, match="1 objects the backup lists are missing"):
        restore(empty_bucket, tmp_path / "backup")
    with pytest.raises(BackupError, match="set TRESEN_STORAGE=s3"):
        restore(elsewhere.with_overrides(storage="local"), tmp_path / "backup")
    assert not (tmp_path / "b" / "tresen.db").exists(), "a refused restore changes nothing"
    restored = restore(elsewhere, tmp_path / "backup")
    assert restored["object_store"]["objects"][0]["key"] == "media/ws/ab/m1"
    assert (tmp_path / "b" / "tresen.db").is_file()


def test_doctor_checks_the_bucket(s3_endpoint: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, **s3_settings(s3_endpoint, _bucket(s3_endpoint)))  # type: ignore[arg-type]
    [fine] = check_storage(settings)
    assert fine.level == OK and settings.s3_bucket in fine.text
    assert list(open_store(settings).listing("doctor/")) == [], "the probe object is removed"
    [wrong] = check_storage(settings.with_overrides(s3_bucket="missing-bucket"))
    assert wrong.level == ERROR and wrong.topic == "file store"
    assert "missing-bucket is not reachable" in wrong.text and SECRET_KEY not in wrong.text


def test_heartbeat_setting_must_leave_room_for_missed_beats() -> None:
    with pytest.raises(SettingsError, match="more than 10"):
        load_settings({"TRESEN_WORKER_HEARTBEAT_SECONDS": "5"}, toml_path=Path("/none.toml"))
    loaded = load_settings({"TRESEN_WORKER_HEARTBEAT_SECONDS": "90"}, toml_path=Path("/none.toml"))
    assert loaded.worker_heartbeat_seconds == 90.0


def test_objects_are_sealed_when_encryption_is_on(s3_endpoint: str, tmp_path: Path) -> None:
    files = open_store(
        Settings(data_dir=tmp_path, **s3_settings(s3_endpoint, _bucket(s3_endpoint)))  # type: ignore[arg-type]
    )
    assert isinstance(files, S3Store)
    content = b"%PDF-1.4 Rechnung Nr. 4711 an Erika Mustermann"
    crypto.use(crypto.parse_keys(f"k1={crypto.new_key()}"))
    try:
        saved = media_store.save(files, "ws1", "m1", content, "application/pdf", 10_000)
        raw = files.client.get_object(Bucket=files.bucket, Key=saved.path)["Body"].read()
        assert b"Mustermann" not in raw and raw != content
        assert media_store.load(files, saved.path) == content
    finally:
        crypto.use(None)
    assert media_store.load(files, "exports/not-media.zip") is None, "only media keys are served"


def test_storage_and_previous_keys_stay_out_of_reprs() -> None:
    settings = Settings(s3_secret_access_key=SECRET_KEY, previous_secret_keys="old-key-value")
    assert SECRET_KEY not in repr(settings) and "old-key-value" not in repr(settings)
