"""The backup domain's tests share the driver tests' real servers: a directory PostgreSQL's OS
user can reach and an S3 store over TLS."""

from tests.drivers.backup.conftest import give_to_owner, s3, shared_dir  # noqa: F401
