"""Where files live: the data dir (default) or an S3-compatible bucket, behind one interface.

Keys are relative paths such as `media/<workspace>/<ab>/<id>` (the media table's `path`); every
process of an install must see the same files, so on several machines use `s3`.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tresen.settings import Settings, check_storage

LOCAL, S3 = "local", "s3"
KINDS = (LOCAL, S3)
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_MISSING = {"NoSuchKey", "404", "NotFound"}
_CHANGED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class StorageError(RuntimeError):
    """The file store could not be reached or refused a request (the text names no secret)."""


def valid_key(key: str) -> bool:
    """Whether a key is a plain relative path: no `..`, no absolute path, no hidden parts."""
    parts = key.split("/")
    return 2 <= len(parts) <= 8 and all(_SEGMENT.match(p) for p in parts) and len(key) <= 512


def _checked(key: str) -> str:
    if not valid_key(key):
        raise ValueError(f"not a storage key: {key[:80]!r}")
    return key


@dataclass(frozen=True)
class StoredObject:
    """One file in the store, as listed."""

    key: str
    size: int
    modified: float
    """Last change, seconds since the epoch."""


@dataclass(frozen=True)
class Fetched:
    """A file's bytes and the version they were read at (for `replace`)."""

    data: bytes
    version: str
    """The ETag in a bucket; inode, size and change time on disk."""


class FileStore(Protocol):
    """Files of one install: media, staged attachments, exports."""

    kind: str

    def put(self, key: str, data: bytes) -> None:
        """Write a file (whole, replacing any file under this key)."""
        ...

    def get(self, key: str) -> bytes | None:
        """A file's bytes, or None when there is none (or the key is not valid)."""
        ...

    def head(self, key: str, length: int) -> bytes | None:
        """The first `length` bytes of a file, or None when there is none."""
        ...

    def fetch(self, key: str) -> Fetched | None:
        """A file's bytes with their version, or None when there is none."""
        ...

    def replace(self, key: str, data: bytes, version: str) -> bool:
        """Overwrite a file only while it is still at `version` (else False, nothing written)."""
        ...

    def delete(self, key: str) -> bool:
        """Remove a file; whether one was there (S3 cannot tell: True)."""
        ...

    def listing(self, prefix: str) -> Iterator[StoredObject]:
        """Every file whose key starts with `prefix`."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file on this machine's disk when the store is local (for streaming), else None."""
        ...

    def check(self) -> str:
        """`ok`, or what is wrong (reachability, permissions)."""
        ...

    def describe(self) -> str:
        """Where the files are, without any secret."""
        ...


class LocalStore:
    """Files under the data dir, private to the user running tresen (0700 folders, 0600 files)."""

    kind = LOCAL

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _checked(key)

    def put(self, key: str, data: bytes) -> None:
        """Write atomically: a hidden part file, fsync, rename."""
        target = self._path(key)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = self.root
        for part in key.split("/")[:-1]:
            folder = folder / part
            folder.mkdir(mode=0o700, exist_ok=True)
        _written(target, data).replace(target)

    def head(self, key: str, length: int) -> bytes | None:
        """Read the start of the file only."""
        path = self.local_path(key)
        if path is None:
            return None
        try:
            with path.open("rb") as f:
                return f.read(length)
        except FileNotFoundError:
            return None

    def fetch(self, key: str) -> Fetched | None:
        """The file's bytes and version (read from the same open file)."""
        path = self.local_path(key)
        if path is None:
            return None
        try:
            with path.open("rb") as f:
                version = _version(os.fstat(f.fileno()))
                return Fetched(f.read(), version)
        except FileNotFoundError:
            return None

    def replace(self, key: str, data: bytes, version: str) -> bool:
        """Write a part file, then rename it over the file if that is still unchanged."""
        path = self.local_path(key)
        if path is None:
            return False
        temporary = _written(path, data)
        try:
            unchanged = _version(path.stat()) == version
        except FileNotFoundError:
            unchanged = False
        if not unchanged:
            temporary.unlink(missing_ok=True)
            return False
        temporary.replace(path)
        return True

    def get(self, key: str) -> bytes | None:
        """The file's bytes, or None."""
        path = self.local_path(key)
        try:
            return path.read_bytes() if path is not None else None
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> bool:
        """Unlink the file."""
        if not valid_key(key):
            return False
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def listing(self, prefix: str) -> Iterator[StoredObject]:
        """Walk the folders under the data dir, one folder's names in memory at a time."""
        top = prefix.split("/", 1)[0]
        base = self.root / top
        if not top or not base.is_dir():
            return
        for folder, subfolders, names in os.walk(base):
            subfolders.sort()
            for name in sorted(names):
                path = Path(folder) / name
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix) or not valid_key(key):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:  # deleted meanwhile
                    continue
                if path.is_file():
                    yield StoredObject(key, stat.st_size, stat.st_mtime)

    def local_path(self, key: str) -> Path | None:
        """The file, only when it is a regular file inside the data dir."""
        if not valid_key(key):
            return None
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or not path.is_file():
            return None
        return path

    def check(self) -> str:
        """The data dir (or the folder it will be made in) is writable; nothing is created."""
        existing = self.root.resolve()
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            return f"{existing} is not a directory"
        writable = os.access(existing, os.W_OK | os.X_OK)
        return "ok" if writable else f"{existing} is not writable by this user"

    def describe(self) -> str:
        """The data dir."""
        return f"local directory {self.root.resolve()}"


def _written(target: Path, data: bytes) -> Path:
    """A hidden, fsynced part file next to `target` holding `data` (0600)."""
    temporary = target.with_name(f".{target.name}.part")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(handle, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return temporary


def _version(stat: os.stat_result) -> str:
    return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


class S3Store:
    """Files as objects in one bucket of S3 or an S3-compatible server (MinIO, Ceph, …)."""

    kind = S3

    def __init__(self, client: Any, bucket: str, prefix: str = "", endpoint: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint

    def _key(self, key: str) -> str:
        return self.prefix + _checked(key)

    def put(self, key: str, data: bytes) -> None:
        """One PUT (files are at most TRESEN_MAX_MEDIA_BYTES)."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(
                f"could not store a file in bucket {self.bucket}: {_why(exc)}"
            ) from exc

    def _object(self, key: str, **options: str) -> tuple[bytes, Any] | None:
        """get_object's body and answer, or None when the object does not exist."""
        if not valid_key(key):
            return None
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **options)
            return bytes(answer["Body"].read()), answer
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            if "Range" in options and _code(exc) == "InvalidRange":  # an empty object
                return b"", {}
            raise StorageError(
                f"could not read a file in bucket {self.bucket}: {_why(exc)}"
            ) from exc
        except BotoCoreError as exc:
            raise StorageError(
                f"could not read a file in bucket {self.bucket}: {_why(exc)}"
            ) from exc

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        found = self._object(key)
        return None if found is None else found[0]

    def head(self, key: str, length: int) -> bytes | None:
        """A ranged GET of the object's first bytes."""
        found = self._object(key, Range=f"bytes=0-{max(length, 1) - 1}")
        return None if found is None else found[0][:length]

    def fetch(self, key: str) -> Fetched | None:
        """The object's bytes and ETag."""
        found = self._object(key)
        return None if found is None else Fetched(found[0], str(found[1]["ETag"]))

    def replace(self, key: str, data: bytes, version: str) -> bool:
        """A conditional PUT (If-Match on the ETag read)."""
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, IfMatch=version
            )
        except ClientError as exc:
            if _code(exc) in _MISSING | _CHANGED:
                return False
            raise StorageError(
                f"could not store a file in bucket {self.bucket}: {_why(exc)}"
            ) from exc
        except BotoCoreError as exc:
            raise StorageError(
                f"could not store a file in bucket {self.bucket}: {_why(exc)}"
            ) from exc
        return True

    def delete(self, key: str) -> bool:
        """DELETE the object (S3 answers the same whether it existed)."""
        if not valid_key(key):
            return False
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(
                f"could not delete a file in bucket {self.bucket}: {_why(exc)}"
            ) from exc
        return True

    def listing(self, prefix: str) -> Iterator[StoredObject]:
        """Page through ListObjectsV2."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    key = str(item["Key"])[len(self.prefix) :]
                    changed = item.get("LastModified")
                    if valid_key(key):
                        yield StoredObject(
                            key, int(item.get("Size", 0)), changed.timestamp() if changed else 0.0
                        )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"could not list bucket {self.bucket}: {_why(exc)}") from exc

    def local_path(self, key: str) -> Path | None:
        """Objects are never on local disk."""
        return None

    def check(self) -> str:
        """HEAD the bucket, then write, read and delete a probe object."""
        probe = "doctor/probe"
        try:
            self.client.head_bucket(Bucket=self.bucket)
            self.put(probe, b"tresen doctor probe")
            if self.get(probe) != b"tresen doctor probe":
                return f"bucket {self.bucket}: a written object read back differently"
            self.delete(probe)
        except (BotoCoreError, ClientError) as exc:
            return f"bucket {self.bucket} is not reachable ({_why(exc)})"
        except StorageError as exc:
            return str(exc)
        return "ok"

    def describe(self) -> str:
        """Bucket, prefix and endpoint (never the keys)."""
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"S3 bucket {self.bucket}{where}" + (
            f", prefix {self.prefix}" if self.prefix else ""
        )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _why(exc: Exception) -> str:
    """The error's kind and code, never the request (which may carry signed credentials)."""
    if isinstance(exc, ClientError):
        return f"{_code(exc) or 'error'} {exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode', '')}".strip()
    return type(exc).__name__


def location(settings: Settings) -> str:
    """Where this process keeps files, comparable across processes: a path or `s3://bucket/prefix`."""
    if settings.storage == S3:
        prefix = settings.s3_prefix.strip("/")
        endpoint = f" at {settings.s3_endpoint_url}" if settings.s3_endpoint_url else ""
        return f"s3://{settings.s3_bucket}/{prefix + '/' if prefix else ''}{endpoint}"
    return str(settings.data_dir.resolve())


def open_store(settings: Settings) -> FileStore:
    """The install's file store the settings describe (one client per process and settings)."""
    check_storage(settings)
    if settings.storage == LOCAL:
        return LocalStore(settings.data_dir)
    return _s3(
        settings.s3_bucket,
        settings.s3_prefix.strip("/") + "/" if settings.s3_prefix.strip("/") else "",
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id,
        settings.s3_secret_access_key,
    )


@functools.lru_cache(maxsize=8)
def _s3(
    bucket: str, prefix: str, endpoint: str, region: str, access_key: str, secret: str
) -> S3Store:
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=region or None,
        aws_access_key_id=access_key or None,
        aws_secret_access_key=secret or None,
        config=Config(
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path" if endpoint else "auto"},
        ),
    )
    return S3Store(client, bucket, prefix, endpoint)
