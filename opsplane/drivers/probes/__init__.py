"""Probes: async checks of HTTP(S), TCP, PostgreSQL, Redis, TLS certificates, commands and the host."""

from __future__ import annotations

from collections.abc import Mapping

from opsplane.drivers.probes.base import Probe, ProbeFailed, describe_failure, run_probe
from opsplane.health.targets import CheckTarget


def build_probe(target: CheckTarget, *, environ: Mapping[str, str] | None = None) -> Probe:
    """The probe for `target`; secrets are resolved here, from `environ` (default os.environ)."""
    raise NotImplementedError  # filled in by the probe implementations


__all__ = ["Probe", "ProbeFailed", "build_probe", "describe_failure", "run_probe"]
