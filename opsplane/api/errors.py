"""One error body for the whole API, and the responses each route declares with it.

Every refusal, whether FastAPI's (a parameter that does not validate, a body that is not
JSON, a method the path does not take) or a route's own (an unknown incident, a change the
incident's state does not allow), answers `{"detail": "...", "problems": [...]}`: `detail`
says what went wrong in words a person can act on, `problems` locates each invalid field of
a request that did not validate (empty otherwise). The two routes in Prometheus's shape
(`/api/v1/query`, `/api/v1/query_range`) answer their own 400 and 503 as Prometheus does, a
parameter that does not validate included (a `time` of `inf` is Prometheus's `bad_data`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

# What each status means on this API, as the document says it.
MEANING = {
    400: "The body is not what the route reads (not JSON, or not the expected JSON).",
    401: "No bearer token, or one that is unknown or revoked.",
    403: "The token's role is below the one this route needs.",
    404: "What the path or a parameter names does not exist.",
    409: "The change is not possible in the current state.",
    413: "The body is too large.",
    422: "A parameter or a field of the body is invalid, or the request breaks a rule the "
         "schema cannot state (an unknown schedule, an end before its start): `detail` says "
         "what; `problems` lists each invalid field of a request that did not validate.",
    429: "The sender has reached a limit; `detail` says which.",
    502: "The runtime refused or failed the change.",
    503: "A part this route needs is not running.",
}


class Problem(BaseModel):
    """One invalid part of a request."""

    field: str = Field(description="Where: query.since, path.incident_id, body.start, ...")
    message: str


class ErrorBody(BaseModel):
    """What every error answers."""

    detail: str = Field(description="What went wrong and what to do about it.")
    problems: list[Problem] = Field(default_factory=list,
                                    description="Each invalid field, for a request that did not validate.")


def declare(*codes: int, meaning: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status in `codes` with the error body, described by
    `meaning` where the route says more than MEANING does."""
    said = meaning or {}
    return {code: {"model": ErrorBody, "description": said.get(code, MEANING[code])} for code in codes}


def install(app: FastAPI) -> None:
    """Answer every refusal of `app` with the one error body."""
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    body = ErrorBody(detail=str(exc.detail))
    headers = exc.headers
    if exc.status_code == 405:  # Starlette names only the methods of the first route on the path
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app takes on the request's path (a path such as
    /api/v1/deploys is read by one route and written by another)."""
    from starlette.routing import Match

    found: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            found.update(getattr(route, "methods", None) or ())
    return sorted(found)


# Routes that speak Prometheus's HTTP API and so refuse bad parameters in its shape.
PROMETHEUS_SHAPED = frozenset({"/api/v1/query", "/api/v1/query_range"})


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [Problem(field=".".join(str(part) for part in error.get("loc", ())),
                        message=str(error.get("msg", "invalid")))
                for error in exc.errors()]
    if request.url.path in PROMETHEUS_SHAPED:
        said = "; ".join(f'invalid parameter "{p.field.removeprefix("query.")}": {p.message}'
                         for p in problems)
        return JSONResponse({"status": "error", "errorType": "bad_data", "error": said}, status_code=400)
    summary = "; ".join(f"{p.field}: {p.message}" for p in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    body = ErrorBody(detail=f"invalid request: {summary}{more}", problems=problems)
    return JSONResponse(body.model_dump(), status_code=422)
