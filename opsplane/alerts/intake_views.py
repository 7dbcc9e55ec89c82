"""`POST /api/v2/alerts`: Alertmanager's alert API, so a Prometheus can send its alerts to
`opsplane serve` as it would to an Alertmanager (docs/alerting.md, "Alerts from an existing
Prometheus").

Sending alerts pages people, so it takes the responder role, the lowest that changes what
alerting does. The answer is Alertmanager's: 200 once the alerts are accepted (the next
alerting cycle, started at once, takes them), 400 with the reason for a body that is not a
list of alerts; each alert is read on its own, so the valid alerts of a body are accepted
even when the 400 names others. 413 for a body over `alerting.intake.max_request_bytes`, 429
when the sender holds `max_alerts_per_sender` alerts and the body brings new ones (the others
are accepted). Prometheus sends every alert again each minute; only changes (an alert that
fires, one that resolves) become events, in the alerting cycle.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status

from opsplane.alerts.models import IntakeSettings
from opsplane.api.errors import declare
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role

MAX_ALERTS = 10_000  # as alerts.intake.MAX_ALERTS, which the document states
_DEFAULTS = IntakeSettings()  # the bounds the document states; the inventory may set others
_SHOWN_PROBLEMS = 3

router = APIRouter(tags=["alerts"])

# The route reads its body itself (to bound its size before decoding it), so FastAPI cannot
# infer it: the document states it here, as Alertmanager's `postableAlerts`.
_NAMES = {"pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$", "maxLength": _DEFAULTS.max_label_name_length}
_LABELS = {"type": "object", "propertyNames": _NAMES, "maxProperties": _DEFAULTS.max_labels,
           "additionalProperties": {"type": "string", "maxLength": _DEFAULTS.max_label_value_length}}
# Annotations longer than the bound are cut, not refused.
_ANNOTATIONS = {"type": "object", "propertyNames": _NAMES, "maxProperties": _DEFAULTS.max_labels,
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
                "annotations": {"anyOf": [_ANNOTATIONS, {"type": "null"}]},
                "startsAt": _TIME,
                "endsAt": {**_TIME, "description": "Not before startsAt; empty or null: in five "
                                                   "minutes unless sent again."},
                "generatorURL": {"type": "string"},
            },
        },
    }}},
}


@router.post("/alerts", openapi_extra={"requestBody": ALERTS_BODY},
             responses=declare(400, 413, 429, 503, meaning={
                 400: "The body is not a list of alerts, or alerts in it are invalid (an endsAt "
                      "before its startsAt, a label over its bound, ...): `detail` names them; the "
                      "valid alerts of the body are accepted.",
                 413: "The body is larger than `alerting.intake.max_request_bytes` (4 MiB by default).",
                 429: "The sender holds as many alerts as it may (`alerting.intake.max_alerts_per_sender`, "
                      "1,000 by default): its new alerts are refused until some end; the others are "
                      "accepted.",
                 503: "Alerting could not start; send the alerts again."}))
async def receive_alerts(
    request: Request, principal: Principal = Depends(require(Role.RESPONDER))
) -> dict[str, Any]:
    """Accept alerts in Alertmanager's v2 format (a JSON list of `{labels, annotations,
    startsAt, endsAt, generatorURL}`)."""
    from opsplane.alerts.intake import IntakeError, read_alerts

    plane = request.app.state.plane
    limits = plane.inventory.alerting.intake
    body = await _json_body(request, limits.max_request_bytes)
    try:
        reading = read_alerts(body, now=plane.clock.now(), sender=principal.actor, limits=limits)
    except IntakeError as exc:
        plane.metrics.alerts_refused.labels("invalid").inc()
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    refused = plane.receive_alerts(reading.alerts) if reading.alerts else []
    if refused is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "alerting could not start (see the server log); send the alerts again")
    accepted = len(reading.alerts) - len(refused)
    if reading.problems:
        plane.metrics.alerts_refused.labels("invalid").inc(len(reading.problems))
        shown = "; ".join(reading.problems[:_SHOWN_PROBLEMS])
        more = len(reading.problems) - _SHOWN_PROBLEMS
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            f"{_accepted(accepted, len(body))}; refused: {shown}"
                            + (f" (and {more} more)" if more > 0 else ""))
    if refused:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"{_accepted(accepted, len(body))}: {principal.actor} holds "
                            f"{limits.max_alerts_per_sender:,} alerts, the most one sender may "
                            f"(alerting.intake.max_alerts_per_sender); {len(refused):,} new alerts "
                            "were refused, send them again once some have ended")
    return {"status": "success", "received": accepted}


def _accepted(accepted: int, sent: int) -> str:
    return f"{accepted:,} of {sent:,} alerts accepted" if accepted else "no alert accepted"


async def _json_body(request: Request, limit: int) -> Any:
    if (declared := request.headers.get("content-length", "")).isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, _too_large(limit))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, _too_large(limit))
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


def _too_large(limit: int) -> str:
    size = f"{limit / (1024 * 1024):g} MiB" if limit % (1024 * 1024) == 0 else f"{limit:,} bytes"
    return (f"the body is larger than {size} (alerting.intake.max_request_bytes): send fewer alerts "
            "a request, or shorter texts")
