"""`POST /api/v2/alerts`: Alertmanager's alert API, so a Prometheus can send its alerts to
`opsplane serve` as it would to an Alertmanager (docs/alerting.md, "Alerts from an existing
Prometheus").

Sending alerts pages people, so it takes the responder role, the lowest that changes what
alerting does. The answer is Alertmanager's: 200 once the alerts are accepted (the next
alerting cycle, started at once, takes them), 400 with the reason for a body that is not a
list of alerts. Prometheus sends every alert again each minute; only changes (an alert that
fires, one that resolves) become events, in the alerting cycle.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status

from opsplane.api.errors import declare
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role

MAX_BODY = 16 * 1024 * 1024  # bytes; Prometheus's batches of 64 alerts are far below
MAX_ALERTS = 10_000  # as alerts.intake.MAX_ALERTS, which the document states

router = APIRouter(tags=["alerts"])

# The route reads its body itself (to bound its size before decoding it), so FastAPI cannot
# infer it: the document states it here, as Alertmanager's `postableAlerts`.
_LABELS = {"type": "object", "propertyNames": {"pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
           "additionalProperties": {"type": "string"}}
# An RFC 3339 time; empty or null (or Go's zero time) when not given, as Prometheus sends it.
_TIME = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "maxLength": 0},
                   {"type": "null"}]}
ALERTS_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "array", "maxItems": MAX_ALERTS,
        "items": {
            "type": "object", "additionalProperties": False, "required": ["labels"],
            "properties": {
                "labels": {**_LABELS, "required": ["alertname"], "minProperties": 1,
                           "properties": {"alertname": {"type": "string", "minLength": 1}}},
                "annotations": {"anyOf": [_LABELS, {"type": "null"}]},
                "startsAt": _TIME,
                "endsAt": {**_TIME, "description": "Not before startsAt; empty or null: in five "
                                                   "minutes unless sent again."},
                "generatorURL": {"type": "string"},
            },
        },
    }}},
}


@router.post("/alerts", openapi_extra={"requestBody": ALERTS_BODY},
             responses=declare(400, 413, 503, meaning={
                 400: "The body is not a list of alerts, or an alert in it is invalid (an endsAt "
                      "before its startsAt, ...).",
                 503: "Alerting could not start; send the alerts again."}))
async def receive_alerts(
    request: Request, principal: Principal = Depends(require(Role.RESPONDER))
) -> dict[str, Any]:
    """Accept alerts in Alertmanager's v2 format (a JSON list of `{labels, annotations,
    startsAt, endsAt, generatorURL}`)."""
    from opsplane.alerts.intake import IntakeError, parse_alerts

    body = await _json_body(request)
    plane = request.app.state.plane
    try:
        alerts = parse_alerts(body, now=plane.clock.now(), sender=principal.actor)
    except IntakeError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    if not plane.receive_alerts(alerts):
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "alerting could not start (see the server log); send the alerts again")
    return {"status": "success", "received": len(alerts)}


async def _json_body(request: Request) -> Any:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                                f"the body is larger than {MAX_BODY // (1024 * 1024)} MiB")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body is empty; send a JSON list of alerts")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"the body is not JSON: {exc}") from None
    except RecursionError:  # the decoder's own bound on nesting: far past any list of alerts
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            "the body is nested too deep to be a list of alerts") from None
