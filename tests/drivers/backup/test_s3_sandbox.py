"""The temporary S3 store: real moto over TLS on loopback, trusted only through its CA file."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import pytest

from opsplane.drivers.sandbox.s3 import TemporaryS3

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryS3]:
    with TemporaryS3(tmp_path_factory.mktemp("s3")) as store:
        yield store


def test_objects_round_trip_over_tls_with_the_ca(s3: TemporaryS3) -> None:
    s3.create_bucket("sandbox-objects")
    s3.create_bucket("sandbox-objects")  # a second time is fine
    client = s3.client()
    try:
        client.put_object(Bucket="sandbox-objects", Key="a/b.txt", Body=b"over tls")
        body = client.get_object(Bucket="sandbox-objects", Key="a/b.txt")["Body"].read()
    finally:
        client.close()
    assert body == b"over tls"
    assert s3.endpoint == f"127.0.0.1:{s3.port}"
    location = s3.location("sandbox-objects")
    assert (location.host, location.port, location.ca_file) == ("127.0.0.1", s3.port, str(s3.ca_file))
    assert location.url.startswith("https://")


def test_a_client_without_the_ca_is_refused(s3: TemporaryS3) -> None:
    client = s3.client(verify=True)  # the system's CAs only
    try:
        with pytest.raises(botocore.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            client.list_buckets()
    finally:
        client.close()


def test_stop_ends_the_server(tmp_path: Path) -> None:
    store = TemporaryS3(tmp_path).start()
    port, process = store.port, store._process
    assert process is not None and store.running
    store.stop()
    store.stop()
    assert process.poll() is not None
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
