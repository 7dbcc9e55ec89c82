"""Sandboxes: real, temporary servers on loopback for tests and `opsplane demo`.

Each sandbox starts a genuine server binary (PostgreSQL, Redis, Prometheus) on a free
loopback port in a directory it owns, and stops it completely: nothing it started outlives
`stop()`. Import them from their modules: `sandbox.postgres.TemporaryPostgres`,
`sandbox.redis.TemporaryRedis`, `sandbox.prometheus.TemporaryPrometheus`,
`sandbox.ports.free_port`. This package module holds only
what they share, so importing one sandbox never imports the others.
"""

from __future__ import annotations

from opsplane.errors import OpsplaneError


class SandboxError(OpsplaneError):
    """A temporary server could not be found, started or stopped."""


__all__ = ["SandboxError"]
