"""The `alerting:` section of the inventory: rules, the routing tree, receivers, inhibition.

Where the operations manual is silent the defaults are Prometheus's and Alertmanager's
(group_wait 30s, group_interval 5m, repeat_interval 4h, `for` of zero), so rules and routes
mean the same thing when they are exported to those tools.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from opsplane.alerts.matchers import LABEL_NAME, MatcherField, matches_all
from opsplane.alerts.templates import parse_template
from opsplane.config.types import Duration, Ratio, Secret, Wait
from opsplane.units import Unit

DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
ALL_LABELS = "..."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Severity(StrEnum):
    """P0 pages at once; P3 waits for a batched e-mail (the manual's alert levels)."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


def _label_name(value: str) -> str:
    if not LABEL_NAME.match(value):
        raise ValueError(
            f"invalid label name {value!r}: use letters, digits and _, not starting with a digit"
        )
    if value.startswith("__"):
        raise ValueError(f"label name {value!r} is reserved (names starting with __ are internal)")
    return value


def _template(value: str) -> str:
    parse_template(value)
    return value


LabelName = Annotated[str, AfterValidator(_label_name)]
TemplateText = Annotated[str, AfterValidator(_template)]
AlertName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)]
ReceiverName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=63)]


class AlertRule(_Strict):
    name: AlertName = Field(description="Alert name, such as HighErrorRate; the `alertname` label.")
    expr: str = Field(
        min_length=1,
        description="PromQL expression; every series it returns is one alert, its value the alert's value.",
    )
    for_: Wait | None = Field(
        None,
        alias="for",
        description="How long the expression must keep returning a series before the alert fires; "
        "unset: it fires at the first evaluation that returns it.",
    )
    keep_firing_for: Duration | None = Field(
        None,
        description="How long a firing alert stays firing after its series disappears; unset: it "
        "resolves at the first evaluation without it.",
    )
    severity: Severity = Field(description="P0 (critical) to P3 (low); added as the `severity` label.")
    labels: dict[LabelName, str] = Field(
        default_factory=dict, description="Labels added to every alert of the rule (team, component...)."
    )
    unit: Unit | None = Field(
        None,
        description="What the expression's value measures, so people read it as such: ratio (0.019 "
        "reads 1.9%), percent, seconds (0.512 reads 512 ms), bytes (KiB, MiB, GiB), count or "
        "per_second. Unset: a plain number.",
    )
    annotations: dict[LabelName, TemplateText] = Field(
        default_factory=dict,
        description="Texts for people, such as summary and description; {{ $labels.name }} and "
        "{{ $value }} are replaced ({{ $value }} written in the rule's unit), with humanize, "
        "humanize1024, humanizePercentage and humanizeDuration to format the value otherwise.",
    )
    runbook: str | None = Field(
        None, description="The runbook: a link (a URL or a path), sent as the `runbook_url` annotation; "
        "or the name of a runbook opsplane runs (shipped, or in runbooks.dir; no '/', ':', '#' or '.'), "
        "whose command line (`opsplane runbook run NAME`) is sent as the `runbook` annotation unless "
        "the rule's annotations give one."
    )

    @model_validator(mode="after")
    def _labels_do_not_hide_severity(self) -> AlertRule:
        for reserved in ("alertname", "severity"):
            if reserved in self.labels:
                source = "name" if reserved == "alertname" else "severity"
                raise ValueError(
                    f"label {reserved!r} is set by opsplane from the rule's {source}; remove it from labels"
                )
        return self

    def static_labels(self) -> dict[str, str]:
        """The labels every alert of this rule carries, on top of its series' labels."""
        return {**self.labels, "alertname": self.name, "severity": self.severity.value}


class Route(_Strict):
    receiver: ReceiverName | None = Field(
        None, description="Receiver of the alerts this route takes; unset: the parent's."
    )
    matchers: list[MatcherField] = Field(
        default_factory=list,
        description='Labels an alert must match to take this route, such as severity=~"P0|P1"; the '
        "top-level route takes every alert.",
    )
    group_by: list[str] | None = Field(
        None,
        description="Labels whose values split alerts into separate notifications; `...` means every "
        "label. Unset: the parent's; at the top, all alerts form one group.",
    )
    group_wait: Wait | None = Field(
        None, description="Wait before the first notification of a new group (default 30s; 0s "
        "notifies at once)."
    )
    group_interval: Duration | None = Field(
        None, description="Wait before notifying a group again when its alerts changed (default 5m)."
    )
    repeat_interval: Duration | None = Field(
        None, description="Wait before repeating an unchanged notification (default 4h)."
    )
    continue_: bool = Field(
        False,
        alias="continue",
        description="Keep trying the following sibling routes after this one matched.",
    )
    routes: list[Route] = Field(default_factory=list, description="Child routes, tried in order.")

    @model_validator(mode="after")
    def _group_by_names_labels(self) -> Route:
        for name in self.group_by or ():
            if name != ALL_LABELS:
                _label_name(name)
        if self.group_by and ALL_LABELS in self.group_by and len(self.group_by) > 1:
            raise ValueError("group_by: `...` already means every label; list nothing else with it")
        return self

    def walk(self) -> Iterator[Route]:
        yield self
        for child in self.routes:
            yield from child.walk()


def default_route() -> Route:
    """The route when the inventory gives none: every alert to the `default` receiver, with
    Alertmanager's timers, except that a P0 alert is notified the moment it fires.

    The manual answers a P0 "immediately"; Alertmanager's 30 s group_wait exists to gather the
    alerts that separate rule evaluations send in a burst, and opsplane evaluates every rule
    in one cycle, so the alerts a fault raises together arrive together anyway, and the
    alerts of dependent services are muted by inhibition rather than by waiting.
    """
    return Route(receiver="default", routes=[Route(matchers=['severity="P0"'], group_wait=0.0)])


class WebhookReceiver(_Strict):
    url: str = Field(pattern=r"^https?://", description="URL the notification is POSTed to as JSON.")
    bearer_token: Secret | None = Field(
        None, description="Sent as `Authorization: Bearer ...`, as a secret reference."
    )
    timeout: Duration = Field(10.0, description="Longest a delivery may take.")


class Receiver(_Strict):
    channels: list[str] = Field(
        default_factory=list,
        description="Channels (named under `channels.named`) each notification is queued to: Slack, "
        "PagerDuty, e-mail, signed webhooks, the console; see docs/notifications.md.",
    )
    webhook: WebhookReceiver | None = Field(
        None, description="Also POST each notification to this webhook; the event log always gets it."
    )
    send_resolved: bool = Field(True, description="Notify when the alerts of a group resolve.")


class InhibitRule(_Strict):
    source_matchers: list[MatcherField] = Field(
        min_length=1, description="Alerts that, while firing, mute others."
    )
    target_matchers: list[MatcherField] = Field(min_length=1, description="Alerts that may be muted.")
    equal: list[LabelName] = Field(
        default_factory=list,
        description="Labels whose values must be the same on both alerts (a missing label counts as empty).",
    )


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class MaintenanceWindow(_Strict):
    """A silence by calendar: every listed weekday from `start` for `duration`."""

    matchers: list[MatcherField] = Field(
        min_length=1, description='Alerts the window mutes, such as service="orders".'
    )
    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS),
        min_length=1,
        description="Weekdays on which the window opens (mon ... sun); default every day.",
    )
    start: time = Field(description="Local time the window opens, such as 02:00.")
    duration: Duration = Field(description="How long it stays open (at most 7d).")
    timezone: str = Field("UTC", description="IANA time zone of `start`, such as Europe/Berlin.")
    comment: str | None = Field(None, description="Why, for whoever wonders where the alerts went.")

    @model_validator(mode="after")
    def _known_zone_and_bounded(self) -> MaintenanceWindow:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}; use an IANA name such as "
                             "Europe/Berlin or UTC") from None
        if self.duration > 7 * 86400:
            raise ValueError("a maintenance window lasts at most 7d; use a silence for longer")
        return self

    def is_open(self, now: datetime) -> bool:
        """Whether the window is open at `now` (an aware time); a window that opened on an
        earlier day and is still running counts."""
        zone = ZoneInfo(self.timezone)
        local_day = now.astimezone(zone).date()
        for back in range(int(self.duration // 86400) + 2):
            day = local_day - timedelta(days=back)
            if WEEKDAYS[day.weekday()] not in self.days:
                continue
            opens = datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)
            if opens <= now < opens + timedelta(seconds=self.duration):
                return True
        return False

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        """Whether the window mutes an alert with `labels` at `now`."""
        return self.is_open(now) and matches_all(self.matchers, labels)


class PackThresholds(_Strict):
    """The operations manual's thresholds (MON-2, MON-3); each can be overridden."""

    error_rate: Ratio = Field(0.01, description="HighErrorRate (P1): share of 5xx responses.")
    latency_p95: Duration = Field(0.5, description="HighLatencyP95 (P2): 95th percentile response time.")
    latency_p99: Duration = Field(1.0, description="HighLatencyP99 (P1): 99th percentile response time.")
    request_rate_drop: Ratio = Field(
        0.5, description="RequestRateDrop (P0): fall of the request rate against 15 minutes earlier."
    )
    cpu_warning: Ratio = 0.75
    cpu_critical: Ratio = 0.90
    memory_warning: Ratio = 0.80
    memory_critical: Ratio = 0.95
    disk_space_low: Ratio = Field(0.85, description="DiskSpaceLow (P2): filesystem usage.")
    disk_warning: Ratio = 0.75
    disk_critical: Ratio = 0.90
    db_pool_warning: Ratio = 0.80
    db_pool_critical: Ratio = 0.95
    redis_memory_warning: Ratio = 0.75
    redis_memory_critical: Ratio = 0.90
    order_completion: Ratio = Field(0.95, description="LowOrderCompletion (P2): completed checkouts.")
    payment_success: Ratio = Field(0.98, description="LowPaymentSuccess (P1): succeeded charges.")
    search_success: Ratio = Field(0.99, description="LowSearchSuccess (P2): searches without error.")
    gateway_success: Ratio = Field(0.995, description="LowGatewaySuccess (P1): gateway non-5xx responses.")
    check_failures: int = Field(
        3, ge=1, description="DatabaseDown (P0) and CheckFailing (P1): health-check runs in a row that "
        "found the component CRITICAL (opsplane's own probes)."
    )
    failed_logins_per_minute: float = Field(
        10.0, gt=0, description="FailedLoginSpike (P2): failed sign-ins a minute at a service "
        "(`shop_logins_total{result=\"failed\"}`) over the rule window.")
    denied_per_minute: float = Field(
        30.0, gt=0, description="AuthDeniedSpike (P2): answers 401 and 403 a minute at a service.")
    not_found_per_minute: float = Field(
        60.0, gt=0, description="NotFoundScan (P3): answers 404 a minute at a service, when they are "
        "also `not_found_share` of its answers (a scan, not a busy shop with a broken link).")
    not_found_share: Ratio = Field(0.2, description="NotFoundScan (P3): share of answers that are 404.")
    brute_force_logins: int = Field(
        50, ge=1, description="The `security-signals` job: failed sign-ins from one client address in "
        "its window that make a critical finding (brute force).")
    client_share: Ratio = Field(
        0.5, description="The `security-signals` job: share of the gateway's requests from one client "
        "address that makes a warning (when there are at least `client_min_requests`).")
    client_min_requests: int = Field(
        1000, ge=1, description="The `security-signals` job: requests in a window below which no "
        "client's share is judged.")
    share_exempt: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"], description="The `security-signals` job: "
        "addresses or networks (CIDR) whose share of the requests is not judged: the host itself and "
        "the site's own proxies and load balancers. Their failed sign-ins and refusals still are.")

    @field_validator("share_exempt")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not an address or network such as 10.0.0.0/8") from None
        return value


class RulePack(_Strict):
    enabled: bool = Field(
        True, description="Evaluate the built-in rules of the operations manual next to `rules`."
    )
    thresholds: PackThresholds = Field(default_factory=PackThresholds, description="Their thresholds.")
    for_: Duration = Field(
        300.0, alias="for", description="How long each built-in condition must hold before it fires."
    )
    window: Duration = Field(
        300.0,
        description="Rate window of the built-in service rules (errors, latency, gateway success, "
        "request rate); keep it at least four scrape intervals. The business rules keep 15m.",
    )
    runbook_base: str | None = Field(
        None, description="Prefix of links to the built-in rules' runbooks as documents (a URL or a "
        "path): each rule links to `{runbook_base}{rule-name}.md`. Unset: a rule that opsplane ships "
        "a runbook for names it (notifications say `opsplane runbook run ...`), the others link to "
        "`runbooks/{rule-name}.md`."
    )

    @model_validator(mode="after")
    def _window_fits_the_rate_drop_comparison(self) -> RulePack:
        # RequestRateDrop compares the window with the same window 15 minutes earlier; a
        # longer window would overlap the one it is compared with.
        if self.window > 900:
            raise ValueError("window: at most 15m, the offset RequestRateDrop compares against")
        return self


class IntakeSettings(_Strict):
    """Bounds on what `POST /api/v2/alerts` takes (docs/alerting.md, "Limits"). Labels are an
    alert's identity, so an alert whose labels break a bound is refused, not cut; texts for
    people (annotations, the generator URL) are cut, ending in a marker."""

    max_alerts_per_sender: int = Field(
        1000, ge=1,
        description="Received alerts one token may have held at once (firing, or resolved within "
        "the last 15 minutes); a new alert beyond them is refused with 429 until some end.")
    max_request_bytes: int = Field(
        4 * 1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024,
        description="Largest body a request may have, in bytes (a Prometheus sends 64 alerts a "
        "request, a few KiB); a larger one is refused with 413.")
    max_labels: int = Field(64, ge=2, le=1000, description="Labels, and annotations, an alert may have.")
    max_label_name_length: int = Field(128, ge=16, le=1024, description="Characters of a label name.")
    max_label_value_length: int = Field(
        1024, ge=64, le=65536, description="Characters of a label value (`alertname` included).")
    max_annotation_length: int = Field(
        4096, ge=256, le=1_048_576,
        description="Characters an annotation or generator URL keeps; a longer one is cut and ends "
        "in `… [cut from N characters]`.")


class AlertingSettings(_Strict):
    evaluation_interval: Duration = Field(
        15.0, description="How often every rule is evaluated (the manual's scrape interval)."
    )
    rules: list[AlertRule] = Field(default_factory=list, description="Alert rules.")
    route: Route = Field(
        default_factory=lambda: default_route(),
        description="The routing tree: its top route takes every alert and must name a receiver. "
        "Unset: everything goes to `default`, P0 alerts without a group_wait.",
    )
    receivers: dict[ReceiverName, Receiver] = Field(
        default_factory=lambda: {"default": Receiver()},
        description="Receivers by name; each writes notifications to the event log.",
    )
    inhibit_rules: list[InhibitRule] = Field(
        default_factory=list, description="Firing alerts that mute other alerts."
    )
    inhibit_dependents: bool = Field(
        True,
        description="A firing alert about a component (its `service` label) mutes the alerts of the "
        "components that depend on it, and its notification names them.",
    )
    inhibit_dependents_hold: Wait = Field(
        300.0,
        description="How long the dependents stay muted after that alert resolves: their rules' "
        "windows still hold the failures it caused. 0s: only while it fires.",
    )
    inhibit_dependents_more_severe: StrictInt = Field(
        0,
        ge=0,
        le=3,
        description="How many levels more severe than a dependency's alert a dependent's alert may "
        "be and still be muted by it: 0 mutes only alerts as severe or less (a P3 on the database "
        "never mutes a P0 of a service that needs it), 3 mutes any. Inhibition rules are not "
        "affected.",
    )

    builtin_rules: RulePack = Field(
        default_factory=RulePack,
        description="The operations manual's alert tables as rules; a rule in `rules` with the same "
        "name and severity replaces the built-in one.",
    )
    maintenance_windows: dict[ReceiverName, MaintenanceWindow] = Field(
        default_factory=dict,
        description="Recurring windows, by name, during which matching alerts are not notified.",
    )
    intake: IntakeSettings = Field(
        default_factory=IntakeSettings,
        description="Bounds on the alerts a Prometheus sends to `POST /api/v2/alerts`.",
    )

    @model_validator(mode="after")
    def _routes_name_known_receivers(self) -> AlertingSettings:
        if self.route.receiver is None:
            raise ValueError("route: the top-level route must name a receiver")
        for route in self.route.walk():
            if route.receiver is not None and route.receiver not in self.receivers:
                known = ", ".join(sorted(self.receivers)) or "none"
                raise ValueError(f"route names receiver {route.receiver!r}, which is not defined "
                                 f"under receivers (defined: {known})")
        return self

    @model_validator(mode="after")
    def _rules_are_distinct(self) -> AlertingSettings:
        seen: set[tuple[tuple[str, str], ...]] = set()
        for rule in self.rules:
            key = tuple(sorted(rule.static_labels().items()))
            if key in seen:
                raise ValueError(f"two rules named {rule.name} have the same severity and labels; "
                                 "their alerts could not be told apart")
            seen.add(key)
        return self
