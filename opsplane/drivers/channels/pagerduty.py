"""PagerDuty Events API v2: trigger, acknowledge and resolve one alert per group.

The group is the `dedup_key`, so a trigger sent twice (a retry after a lost answer, a restart)
lands on the same PagerDuty alert instead of paging again, and the resolve closes it.
"""

from __future__ import annotations

import json
from typing import Any

from opsplane.drivers.channels.base import HttpRequest, HttpSender, SendResult
from opsplane.links import web_link
from opsplane.notify.models import Notification, PagerDutyChannel, Status

# PagerDuty's payload severities, from the manual's levels
SEVERITY = {"P0": "critical", "P1": "error", "P2": "warning", "P3": "info"}


def format_pagerduty(notification: Notification, *, routing_key: str) -> dict[str, Any]:
    """The event's JSON body. Acknowledge and resolve carry only what PagerDuty reads for them."""
    n = notification
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": n.status.value,
        "dedup_key": n.group[:255],
    }
    if n.status is not Status.TRIGGER:
        return event
    details: dict[str, Any] = {"severity": n.severity.value, "key": n.key}
    if n.details:
        details["details"] = n.details
    if n.runbook:
        details["runbook"] = n.runbook
    if n.values:  # the exact value for whoever computes, the text for whoever reads
        details["values"] = [v.model_dump(mode="json") for v in n.values]
    payload: dict[str, Any] = {
        "summary": n.title()[:1024],
        "source": n.service or n.source,
        "severity": SEVERITY[n.severity.value],
        "custom_details": details,
    }
    if n.service:
        payload["component"] = n.service
    event["payload"] = payload
    event["client"] = n.source
    # PagerDuty shows these as links: web addresses only (the runbook's text is in the details)
    links = ([{"href": n.runbook, "text": "Runbook"}] if n.runbook else [])
    links += [{"href": link.href, "text": link.text} for link in n.links]
    links = [link for link in links if web_link(link["href"])]
    if links:
        event["links"] = links
    return event


def pagerduty_request(notification: Notification, *, url: str, routing_key: str) -> HttpRequest:
    body = json.dumps(format_pagerduty(notification, routing_key=routing_key)).encode()
    return HttpRequest(url, body, {"Content-Type": "application/json"})


class PagerDutyDriver:
    def __init__(self, name: str, settings: PagerDutyChannel, *, routing_key: str) -> None:
        self.name = name
        self._url = settings.url
        self._key = routing_key
        self._http = HttpSender(settings.timeout)

    def send(self, notification: Notification) -> SendResult:
        request = pagerduty_request(notification, url=self._url, routing_key=self._key)
        return self._http.post(request, secrets=(self._key,))

    def close(self) -> None:
        self._http.close()
