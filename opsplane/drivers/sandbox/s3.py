"""A private S3-compatible object store on loopback, over TLS: moto's standalone server.

`TemporaryS3` runs moto's S3 server (moto's own WSGI application and request handler, in the
Python running opsplane) on 127.0.0.1 on a free port with a self-signed certificate it writes
into its `base_dir`, for IP 127.0.0.1 and DNS localhost. TLS is not optional here because
pgBackRest speaks only HTTPS to S3; clients trust the store through `ca_file`. Buckets live
in the server's memory and vanish with it.

Why not `moto_server --ssl-cert/--ssl-key` as it is: werkzeug's development server answers
every request with "Connection: close" and then drops the TCP connection without a TLS
close_notify. A client that reads a response to its end-of-stream, as pgBackRest does for the
empty body of a PUT, sees "TLS error ... unexpected eof while reading" and retries until it
gives up (a minute per file). So this module also serves (`python -m
opsplane.drivers.sandbox.s3 HOST PORT CERT KEY`): the same moto application and handler,
with the TLS session shut down properly after each response.

The certificate carries 127.0.0.1 both as an IP address and as a DNS name: Python and
OpenSSL match an address against IP entries, while pgBackRest (2.45) compares the host it
was given only with the DNS entries (and the common name).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from opsplane.drivers.backup.base import S3Location
from opsplane.drivers.sandbox import Sandbox, SandboxError, end_process
from opsplane.drivers.sandbox.ports import free_port

_SOURCE_ROOT = Path(__file__).resolve().parents[3]
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
_REGION = "us-east-1"
# moto accepts any credentials; these only have to look like AWS keys.
ACCESS_KEY = "AKIAOPSPLANETEST0000"
SECRET_KEY = "opsplane-sandbox-secret-key-not-a-real-one"


class TemporaryS3(Sandbox):
    """An S3-compatible store of our own on https://127.0.0.1:PORT, in memory.

    After `start()`: `endpoint` is "127.0.0.1:PORT", `ca_file` the certificate clients must
    trust, `client()` a boto3 client for it, `location(bucket)` the S3Location a backup
    repository would be given. `base_dir` holds the certificate, its key and the log."""

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        self.base_dir = Path(base_dir)
        self.host = "127.0.0.1"
        self.port = 0
        self.region = _REGION
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def endpoint(self) -> str:
        """host:port, without a scheme (the store only speaks HTTPS)."""
        if not self.port:
            raise SandboxError("the temporary S3 store has not been started")
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.endpoint}"

    @property
    def ca_file(self) -> Path:
        """The store's self-signed certificate: the CA bundle its clients verify it with."""
        return self.base_dir / "s3-cert.pem"

    @property
    def key_file(self) -> Path:
        return self.base_dir / "s3-key.pem"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "moto.log"

    def client(self, *, verify: bool | str | None = None) -> Any:
        """A new boto3 S3 client for this store, verifying TLS with `ca_file` unless told
        otherwise (`verify=False`, or another CA bundle's path)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            verify=str(self.ca_file) if verify is None else verify,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                          connect_timeout=5, read_timeout=30),
        )

    def create_bucket(self, name: str) -> None:
        """Create bucket `name` (an existing one of ours is left as it is)."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        finally:
            client.close()

    def location(self, bucket: str) -> S3Location:
        """Where a repository in `bucket` of this store is, with its credentials and CA."""
        return S3Location(
            endpoint=self.endpoint, bucket=bucket, region=self.region,
            access_key=self.access_key, secret_key=self.secret_key,
            ca_file=str(self.ca_file), verify_tls=True, uri_style="path",
        )

    def start(self) -> TemporaryS3:
        """Write a certificate and start the server; returns self once it answers over TLS.
        Starting a running store does nothing."""
        if self.running:
            return self
        self.base_dir.mkdir(parents=True, exist_ok=True)
        write_self_signed(self.ca_file, self.key_file, host=self.host)
        self.port = free_port(self.host)
        argv = [sys.executable, "-m", __name__, self.host, str(self.port),
                str(self.ca_file), str(self.key_file)]
        # The server's own environment, minus anything that would point it at real AWS, and
        # with this very opsplane first on the import path.
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(_SOURCE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
        self._log = self.log_file.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - argv built here, no shell
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=self.base_dir, env=env, start_new_session=True,
        )
        return self._started(self._wait_ready)

    def stop(self) -> None:
        """SIGTERM the server and wait until it has exited (SIGKILL if it will not). Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            end_process(process, _STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __repr__(self) -> str:
        return f"<TemporaryS3 {self.host}:{self.port} pid={self.pid}>"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise SandboxError(f"moto's S3 server exited with code "
                                   f"{self._process.returncode} at start{self._log_tail()}")
            client = self.client()
            try:
                client.list_buckets()
                return
            except Exception as exc:  # noqa: BLE001 - anything means "not yet"
                last_error = exc
            finally:
                client.close()
            time.sleep(0.1)
        raise SandboxError(f"moto's S3 server on port {self.port} did not answer over TLS "
                           f"within {_START_TIMEOUT:g} s ({last_error}){self._log_tail()}")


def write_self_signed(cert_file: Path, key_file: Path, *, host: str = "127.0.0.1") -> None:
    """Write a new self-signed certificate for `host` and localhost (valid a week, its own
    CA) to `cert_file`, and its private key (mode 0600) to `key_file`, both PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "opsplane sandbox")])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(host), x509.DNSName("localhost")]
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        pass
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=False, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_file.touch(mode=0o600, exist_ok=True)
    key_file.chmod(0o600)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cert_file.chmod(0o644)


def serve(host: str, port: int, cert_file: str, key_file: str) -> None:
    """Serve moto's S3 on host:port over TLS until SIGTERM, ending each TLS session with a
    close_notify (see the module's docstring)."""
    import signal
    import ssl

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    class ClosingTlsHandler(MotoRequestHandler):
        # Headers and body go out in separate writes: with Nagle's algorithm the body waits
        # for the client's delayed ACK, 40 ms per request on Linux.
        disable_nagle_algorithm = True

        def finish(self) -> None:
            super().finish()
            connection = self.connection
            if isinstance(connection, ssl.SSLSocket):
                try:
                    connection.settimeout(5)
                    connection.unwrap()  # sends close_notify (and waits briefly for the peer's)
                except (OSError, ValueError):  # timeouts included
                    pass

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=True, ssl_context=(cert_file, key_file),
               request_handler=ClosingTlsHandler)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
