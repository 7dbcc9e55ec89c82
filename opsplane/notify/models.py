"""What a notification says, and the inventory's `channels:` section.

A `Notification` is the one message every caller (alerting, incidents, on-call, the status
page) hands to the outbox; channel drivers turn it into a Slack post, a PagerDuty event,
an e-mail or a signed webhook. The channel settings here are pydantic models of the
inventory; secrets in them are references, resolved only when a channel is opened.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsplane.alerts.models import Severity
from opsplane.config.types import Duration, Secret

ChannelName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=63)]


class Status(StrEnum):
    """Where the thing notified about stands; PagerDuty's three event actions."""

    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


class Link(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    href: str


class AlertValue(BaseModel):
    """An alert's value in a message: exact for programs, in its unit for people."""

    model_config = ConfigDict(frozen=True)

    alert: str
    service: str | None = None
    value: float | None = None  # None: the alert carries no value (one received from a Prometheus)
    unit: str | None = None
    text: str


class Notification(BaseModel):
    """One message to one or more channels.

    `key` makes it idempotent: enqueueing the same key for the same channel twice keeps one
    row. `group` orders it: the messages of a group (an alert group, an incident) are sent in
    the order they were enqueued, and PagerDuty receives the group as its `dedup_key`.
    """

    model_config = ConfigDict(frozen=True)

    key: str = Field(min_length=1, max_length=200)
    group: str = Field(min_length=1, max_length=200)
    status: Status = Status.TRIGGER
    severity: Severity = Severity.P2
    summary: str = Field(min_length=1)
    service: str | None = None
    details: str = ""
    runbook: str | None = None
    links: tuple[Link, ...] = ()
    source: str = "opsplane"
    # one person's address on the channel (an e-mail address, a Slack user id to mention, a
    # phone number for an SMS or voice gateway); None: the channel's own recipients
    to: str | None = Field(None, max_length=200)
    # set on the digest a dispatcher builds: the held notifications it stands for
    digest_of: tuple[str, ...] = ()
    # the values of the alerts it reports (an alert group's first ones), for receivers that compute
    values: tuple[AlertValue, ...] = ()

    def title(self) -> str:
        """The one-line headline every channel shows: '[P1 RESOLVED] orders: ...'."""
        word = {Status.TRIGGER: "", Status.ACKNOWLEDGE: " ACKNOWLEDGED", Status.RESOLVE: " RESOLVED"}
        where = f"{self.service}: " if self.service else ""
        return f"[{self.severity.value}{word[self.status]}] {where}{self.summary}"

    def as_payload(self) -> dict[str, Any]:
        """The JSON the outbox stores and the webhook channel sends."""
        return self.model_dump(mode="json")


# --- the inventory's channels -------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ChannelBase(_Strict):
    rate_per_minute: int = Field(
        60, ge=1, description="Most deliveries a minute on this channel; the rest wait their turn."
    )
    timeout: Duration = Field(10.0, description="Longest one delivery attempt may take.")
    digest: bool = Field(
        True, description="Hold P3 notifications and send them as one digest every `digest_interval`."
    )


class SlackChannel(_ChannelBase):
    type: Literal["slack"] = Field(description="Slack incoming webhook.")
    webhook_url: Secret = Field(
        description="The incoming webhook's URL, as a secret reference (the URL is the credential)."
    )
    ack_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Base URL of the page where a responder acknowledges; shown as a button.",
    )
    rate_per_minute: int = Field(
        60, ge=1, description="Most posts a minute; Slack allows about one a second per webhook."
    )


class PagerDutyChannel(_ChannelBase):
    type: Literal["pagerduty"] = Field(description="PagerDuty Events API v2.")
    routing_key: Secret = Field(description="The integration's routing key, as a secret reference.")
    url: str = Field(
        "https://events.pagerduty.com/v2/enqueue",
        pattern=r"^https?://",
        description="The Events API endpoint.",
    )
    rate_per_minute: int = Field(
        120, ge=1, description="Most events a minute; PagerDuty throttles a routing key beyond about 120."
    )
    digest: bool = Field(
        False, description="PagerDuty pages each event itself, so P3 events are not held for a digest."
    )


class EmailChannel(_ChannelBase):
    type: Literal["email"] = Field(description="E-mail over SMTP.")
    host: str = Field(description="SMTP server.")
    port: int = Field(587, ge=1, le=65535, description="SMTP port; 587 is submission with STARTTLS.")
    starttls: bool = Field(True, description="Upgrade the connection with STARTTLS before sending.")
    ca_file: str | None = Field(
        None, description="PEM file of the CA that signed the server's certificate [default: system CAs]."
    )
    username: str | None = Field(None, description="SMTP login, when the server wants one.")
    password: Secret | None = Field(None, description="SMTP password, as a secret reference.")
    sender: str = Field(description="The From address.")
    to: list[str] = Field(min_length=1, description="Recipients.")
    rate_per_minute: int = Field(30, ge=1, description="Most messages a minute.")

    @model_validator(mode="after")
    def _login_needs_password(self) -> EmailChannel:
        if self.username and not self.password:
            raise ValueError("username is set without a password: add password: env:SMTP_PASSWORD")
        return self


class WebhookChannel(_ChannelBase):
    type: Literal["webhook"] = Field(description="A JSON POST signed with HMAC-SHA256.")
    url: str = Field(pattern=r"^https?://", description="Where the notification is POSTed.")
    secret: Secret | None = Field(
        None, description="Signing secret, as a secret reference; without one, requests are unsigned."
    )
    rate_per_minute: int = Field(120, ge=1, description="Most requests a minute.")


class ConsoleChannel(_ChannelBase):
    type: Literal["console"] = Field(description="One line per notification on the control plane's output.")
    rate_per_minute: int = Field(6000, ge=1, description="Most lines a minute.")
    digest: bool = Field(False, description="Print P3 notifications at once rather than in a digest.")


CHANNEL_TYPES = ("slack", "pagerduty", "email", "webhook", "console")

Channel = Annotated[
    SlackChannel | PagerDutyChannel | EmailChannel | WebhookChannel | ConsoleChannel,
    Field(discriminator="type"),
]


class RetryPolicy(_Strict):
    first: Duration = Field(5.0, description="Wait before the first retry; each retry doubles it.")
    max: Duration = Field(600.0, description="Longest wait between two attempts.")
    give_up_after: Duration = Field(
        86400.0, description="A notification still not delivered this long after it was queued is dead."
    )


class ChannelsSettings(_Strict):
    digest_interval: Duration = Field(
        3600.0, description="How long P3 notifications are held before they go out as one digest."
    )
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy, description="Back-off of failed deliveries (with jitter)."
    )
    named: dict[ChannelName, Channel] = Field(
        default_factory=dict, description="The channels by name; see docs/notifications.md."
    )
