"""A Prometheus server as the source of samples (`metrics.source: prometheus`).

Alert rules and `opsplane query` send their expressions unchanged to the server's HTTP API
(`/api/v1/query`, `/api/v1/query_range`) instead of evaluating them over what `serve`
scrapes, for teams whose metrics already live in Prometheus (or Thanos, Mimir: anything
that answers that API). The answer is read back into the values opsplane's own engine
returns, so the rest of alerting does not know the difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from opsplane.config.models import MetricsSettings
from opsplane.config.types import SecretRef
from opsplane.errors import OpsplaneError
from opsplane.metrics.promql import PromQLError

Sample = tuple[dict[str, str], float]
_SPECIAL = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}


class PrometheusUnavailable(OpsplaneError):
    """The Prometheus server could not be asked (unreachable, timed out, not its API)."""


class PrometheusClient:
    """Instant and range queries against one Prometheus-compatible HTTP API."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(timeout=timeout, headers=headers, trust_env=False,
                                    follow_redirects=False, transport=transport)

    @classmethod
    def from_settings(cls, settings: MetricsSettings,
                      environ: Mapping[str, str] | None = None) -> PrometheusClient:
        if settings.prometheus_url is None:
            raise OpsplaneError("metrics.source is prometheus but metrics.prometheus_url is not set")
        token = (SecretRef(settings.prometheus_token).resolve(dict(environ) if environ is not None else None)
                 if settings.prometheus_token else None)
        return cls(settings.prometheus_url, token=token)

    def query(self, expr: str, at: float) -> dict[str, Any]:
        """The API's `data` for an instant query; PromQLError when Prometheus refuses the
        expression, PrometheusUnavailable when it cannot be asked."""
        return self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})

    def query_range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        return self._get("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}",
                                                  "end": f"{end:.3f}", "step": f"{step:g}"})

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            answer = self._client.get(self.url + path, params=params)
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PrometheusUnavailable(f"Prometheus at {self.url} could not be asked: {exc}") from None
        if body.get("status") != "success":
            kind, message = body.get("errorType", "error"), body.get("error", answer.text[:200])
            if kind in ("bad_data", "execution"):
                raise PromQLError(f"Prometheus refused {params['query']!r}: {message}", "prometheus")
            raise PrometheusUnavailable(f"Prometheus at {self.url} answered {answer.status_code}: {message}")
        data: dict[str, Any] = body["data"]
        return data

    def close(self) -> None:
        self._client.close()


def number(text: str) -> float:
    """A sample value as the API writes it."""
    special = _SPECIAL.get(text)
    return special if special is not None else float(text)


def evaluate_prometheus(client: PrometheusClient) -> Any:
    """An `Evaluate` for the alert rules that asks Prometheus: the instant vector (or scalar)
    of `expr` at `at`, as (labels, value) pairs."""

    def evaluate(expr: str, at: datetime) -> list[Sample]:
        data = client.query(expr, at.timestamp())
        kind, result = data["resultType"], data["result"]
        if kind == "vector":
            return [(dict(item["metric"]), number(item["value"][1])) for item in result]
        if kind == "scalar":
            return [({}, number(result[1]))]
        raise PromQLError(f"rule expression {expr!r} does not return an instant vector or a scalar",
                          kind)

    return evaluate


def query_client(inventory: Any, environ: Mapping[str, str]) -> PrometheusClient:
    """Who answers PromQL for a command: the configured Prometheus (`metrics.source:
    prometheus`), else `serve`'s API, which answers in the same shape, with the viewer token
    OPSPLANE_TOKEN holds."""
    settings = inventory.metrics
    if settings.source == "prometheus":
        return PrometheusClient.from_settings(settings, environ)
    token = environ.get("OPSPLANE_TOKEN")
    if not token:
        raise OpsplaneError("PromQL is asked of serve's API: set OPSPLANE_TOKEN to a viewer token "
                            "(opsplane token create --role viewer)")
    server = inventory.server
    return PrometheusClient(f"http://{server.listen_host}:{server.listen_port}", token=token)
