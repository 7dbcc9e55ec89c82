"""PromQL over the control plane's scraped samples, in the shape of Prometheus's HTTP API.

`GET /api/v1/query?query=EXPR[&time=T]` and `GET /api/v1/query_range?query=EXPR&start=S&end=E&step=D`
answer as Prometheus does (`{"status": "success", "data": {"resultType", "result"}}`, values
as strings), so tools that speak to Prometheus can read them; `opsplane query` is one.
An expression outside the supported subset is a 400 naming the construct. Times are
`api.params.Instant`: RFC 3339 or Unix seconds, as Prometheus reads them.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from opsplane.api.params import Instant
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role
from opsplane.config.types import parse_duration
from opsplane.errors import OpsplaneError

router = APIRouter(tags=["metrics"])
MAX_POINTS = 11_000  # as Prometheus: more points than this in one series is refused


class PrometheusError(BaseModel):
    """An error in the shape of Prometheus's HTTP API."""

    status: Literal["error"]
    errorType: str  # noqa: N815 - Prometheus's field name
    error: str


# Prometheus's refusals, in its shape, for the tools that read them.
PROMETHEUS_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": PrometheusError, "description": "bad_data: a parameter is missing or invalid (a "
          "time of inf), the expression does not parse or is outside the supported subset, or the "
          "step or range cannot be evaluated."},
    503: {"model": PrometheusError, "description": "unavailable: the configured Prometheus "
          "could not be reached."},
}


@router.get("/query", responses=PROMETHEUS_ERRORS)
async def query(
    request: Request,
    expr: str = Query(..., alias="query", description="A PromQL expression."),
    at: Instant | None = Query(None, alias="time", description="Default: now."),
    _: Principal = Depends(require(Role.VIEWER)),
) -> JSONResponse:
    """The expression's value at one instant."""
    from opsplane.metrics.promql import PromQLError, instant

    when = time.time() if at is None else at.timestamp()
    prometheus = request.app.state.plane.prometheus
    try:
        if prometheus is not None:  # metrics.source: prometheus
            return _ok(await run_in_threadpool(prometheus.query, expr, when))
        value = await run_in_threadpool(instant, expr, _source(request), when)
    except PromQLError as exc:
        return _bad(str(exc))
    except OpsplaneError as exc:
        return _unavailable(str(exc))
    return _ok(_result(value, when))


@router.get("/query_range", responses=PROMETHEUS_ERRORS)
async def query_range(
    request: Request,
    expr: str = Query(..., alias="query", description="A PromQL expression."),
    first: Instant = Query(..., alias="start", description="The first step."),
    last: Instant = Query(..., alias="end", description="The last step."),
    step: str = Query(..., description="Seconds between steps, or a duration such as 15s."),
    _: Principal = Depends(require(Role.VIEWER)),
) -> JSONResponse:
    """The expression's value at every step from start to end."""
    from opsplane.metrics.promql import PromQLError, range_query

    start, end = first.timestamp(), last.timestamp()
    try:
        seconds = _seconds(step)
    except ValueError as exc:
        return _bad(f"step: {exc}")
    if end < start:
        return _bad("end is before start")
    if (end - start) / seconds > MAX_POINTS:
        return _bad(f"more than {MAX_POINTS:,} points per series: use a longer step")
    prometheus = request.app.state.plane.prometheus
    try:
        if prometheus is not None:  # metrics.source: prometheus
            return _ok(await run_in_threadpool(prometheus.query_range, expr, start, end, seconds))
        matrix = await run_in_threadpool(range_query, expr, _source(request), start, end, seconds)
    except PromQLError as exc:
        return _bad(str(exc))
    except OpsplaneError as exc:
        return _unavailable(str(exc))
    return _ok(_matrix(matrix.series))


def _seconds(step: str) -> float:
    try:
        seconds = parse_duration(float(step))
    except ValueError:
        return parse_duration(step)
    if not math.isfinite(seconds):  # float() reads "nan" and "inf"
        raise ValueError(f"expected a duration such as 10s, 500ms or 5m, got {step!r}")
    return seconds


def _source(request: Request) -> Any:
    source = request.app.state.plane.scraper.locked_source()
    if source is not None:
        return source
    from opsplane.metrics.store import SampleStore  # nothing is scraped: an empty store

    return SampleStore()


def _result(value: Any, at: float) -> dict[str, Any]:
    from opsplane.metrics.promql import InstantVector, Matrix, Scalar

    if isinstance(value, InstantVector):
        return {"resultType": "vector", "result": [
            {"metric": dict(labels), "value": [at, _number(v)]} for labels, v in value.samples]}
    if isinstance(value, Scalar):
        return {"resultType": "scalar", "result": [at, _number(value.value)]}
    if isinstance(value, Matrix):
        return _matrix(value.series)
    return {"resultType": "string", "result": [at, str(value.value)]}


def _matrix(series: Any) -> dict[str, Any]:
    return {"resultType": "matrix", "result": [
        {"metric": dict(labels), "values": [[t, _number(v)] for t, v in samples]}
        for labels, samples in series]}


def _number(value: float) -> str:
    """A sample value as Prometheus writes it: NaN, +Inf, -Inf, or plain digits."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def _ok(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def _unavailable(message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "errorType": "unavailable", "error": message}, status_code=503)


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "errorType": "bad_data", "error": message}, status_code=400)
