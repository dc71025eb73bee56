"""A real S3-compatible server on loopback for tests: moto's server mode on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from moto.server import ThreadedMotoServer

ACCESS_KEY, SECRET_KEY, REGION = "test-access-key", "test-secret-not-logged", "eu-central-1"


@contextmanager
def s3_server() -> Iterator[str]:
    """Start moto's S3 server on 127.0.0.1 (port 0: any free one); yield its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def make_bucket(endpoint: str, name: str) -> None:
    """Create a bucket on the test server."""
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})


def s3_settings(endpoint: str, bucket: str, prefix: str = "") -> dict[str, str]:
    """Settings values that point an install at the test bucket."""
    return {
        "storage": "s3",
        "s3_bucket": bucket,
        "s3_prefix": prefix,
        "s3_endpoint_url": endpoint,
        "s3_region": REGION,
        "s3_access_key_id": ACCESS_KEY,
        "s3_secret_access_key": SECRET_KEY,
    }
