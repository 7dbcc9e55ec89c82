"""Slack incoming webhooks: a message in Block Kit a responder reads at a glance."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from opsplane.drivers.channels.base import HttpRequest, HttpSender, SendResult
from opsplane.links import web_link
from opsplane.notify.models import Notification, SlackChannel, Status

_EMOJI = {"P0": ":rotating_light:", "P1": ":red_circle:", "P2": ":large_orange_circle:",
          "P3": ":large_blue_circle:"}


def _escape(text: str) -> str:
    # Slack's mrkdwn gives &, < and > a meaning of their own
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_slack(notification: Notification, *, ack_url: str | None = None) -> dict[str, Any]:
    """The webhook's JSON body: a header, severity and service fields, the summary, the runbook
    and links as buttons (an 'Acknowledge' button when `ack_url` is set and it is a trigger)."""
    n = notification
    emoji = ":white_check_mark:" if n.status is Status.RESOLVE else _EMOJI[n.severity.value]
    fields = [
        {"type": "mrkdwn", "text": f"*Severity*\n{n.severity.value}"},
        {"type": "mrkdwn", "text": f"*Status*\n{n.status.value}"},
    ]
    if n.service:
        fields.append({"type": "mrkdwn", "text": f"*Service*\n{_escape(n.service)}"})
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": n.title()[:150], "emoji": True}},
        {"type": "section", "fields": fields},
    ]
    text = _escape(n.details or n.summary)
    if n.to:  # a Slack user id: the mention notifies that person in the channel
        text = f"<@{n.to}> {text}"
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    buttons: list[dict[str, Any]] = []
    if ack_url and n.status is Status.TRIGGER and not n.digest_of:
        ack = f"{ack_url.rstrip('/')}/{quote(n.group, safe='')}"
        buttons.append(_button("Acknowledge", ack, style="primary"))
    # only web addresses become buttons; anything else is said as text (opsplane.links)
    said: list[str] = []
    for text, href in ([("Runbook", n.runbook)] if n.runbook else []) + [(x.text, x.href) for x in n.links]:
        if web_link(href):
            buttons.append(_button(text, href))
        else:
            said.append(f"{_escape(text)}: `{_escape(href)}`")
    if said:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": "\n".join(said)[:3000]}]})
    if buttons:
        blocks.append({"type": "actions", "elements": buttons[:25]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"{_escape(n.source)} · group `{_escape(n.group)}`"}]})
    # `text` is what notifications and screen readers show
    return {"text": f"{emoji} {_escape(n.title())}", "blocks": blocks}


def _button(text: str, url: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": text[:75]},
                              "url": url}
    if style:
        button["style"] = style
    return button


def slack_request(notification: Notification, *, webhook_url: str, ack_url: str | None) -> HttpRequest:
    body = json.dumps(format_slack(notification, ack_url=ack_url)).encode()
    return HttpRequest(webhook_url, body, {"Content-Type": "application/json"})


class SlackDriver:
    def __init__(self, name: str, settings: SlackChannel, *, webhook_url: str) -> None:
        self.name = name
        self._settings = settings
        self._url = webhook_url
        self._http = HttpSender(settings.timeout)

    def send(self, notification: Notification) -> SendResult:
        request = slack_request(notification, webhook_url=self._url, ack_url=self._settings.ack_url)
        return self._http.post(request, secrets=(self._url,))

    def close(self) -> None:
        self._http.close()
