"""Routing and grouping: which receiver hears about which alerts, together, and when.

The tree walk and the timers are Alertmanager's: an alert takes the deepest matching
routes (the first matching child, and further siblings only after one with `continue`);
alerts of one route with the same `group_by` values form one group; a new group waits
`group_wait`, a group with news for its receiver (an alert it was not told of fires, or one
it was told of resolved) `group_interval`, and any other is repeated after `repeat_interval`.
Which notifications are due is a pure function of the alerts, the notification log and the
time, so a restart that reloads the log sends nothing twice. The log also tells which
resolved alerts a receiver still waits to hear about (`owed_resolutions`): the state machine
keeps those until they are sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from opsplane.alerts.inhibition import Inhibition
from opsplane.alerts.matchers import Matcher, matches_all
from opsplane.alerts.models import (
    ALL_LABELS,
    DEFAULT_GROUP_INTERVAL,
    DEFAULT_GROUP_WAIT,
    DEFAULT_REPEAT_INTERVAL,
    MaintenanceWindow,
    Route,
)
from opsplane.alerts.silences import Silence
from opsplane.alerts.state import Alert, AlertState


@dataclass(frozen=True)
class RouteNode:
    """A route with every inherited setting filled in."""

    path: str
    receiver: str
    matchers: tuple[Matcher, ...]
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    continue_: bool
    children: tuple[RouteNode, ...] = ()

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if self.group_by == (ALL_LABELS,):
            return dict(labels)
        return {name: labels[name] for name in self.group_by if name in labels}


def build_tree(route: Route, parent: RouteNode | None = None, path: str = "0") -> RouteNode:
    """The inventory's routing tree with inheritance resolved (the top must name a receiver)."""
    receiver = route.receiver or (parent.receiver if parent else None)
    if receiver is None:
        raise ValueError("the top-level route must name a receiver")
    node = RouteNode(
        path=path,
        receiver=receiver,
        matchers=tuple(route.matchers),
        group_by=tuple(route.group_by) if route.group_by is not None else (parent.group_by if parent else ()),
        group_wait=_inherit(route.group_wait, parent.group_wait if parent else DEFAULT_GROUP_WAIT),
        group_interval=_inherit(
            route.group_interval, parent.group_interval if parent else DEFAULT_GROUP_INTERVAL
        ),
        repeat_interval=_inherit(
            route.repeat_interval, parent.repeat_interval if parent else DEFAULT_REPEAT_INTERVAL
        ),
        continue_=route.continue_,
    )
    children = tuple(build_tree(child, node, f"{path}.{i}") for i, child in enumerate(route.routes))
    return replace(node, children=children)


def _inherit(own: float | None, inherited: float) -> float:
    return inherited if own is None else own


def match_routes(node: RouteNode, labels: Mapping[str, str]) -> list[RouteNode]:
    """The routes an alert with `labels` takes (empty when `node` itself does not match)."""
    if not matches_all(node.matchers, labels):
        return []
    taken: list[RouteNode] = []
    for child in node.children:
        found = match_routes(child, labels)
        taken.extend(found)
        if found and not child.continue_:
            break
    return taken or [node]


@dataclass(frozen=True)
class AlertGroup:
    route: RouteNode
    key: str
    labels: Mapping[str, str]
    alerts: tuple[Alert, ...]

    @property
    def id(self) -> str:
        return group_id(self.key)


def group_key(route: RouteNode, labels: Mapping[str, str]) -> str:
    """The key of the group an alert with `labels` joins on `route`."""
    values = route.group_labels(labels)
    return route.path + ":{" + ",".join(f'{k}="{v}"' for k, v in sorted(values.items())) + "}"


def group_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def group_alerts(tree: RouteNode, alerts: Iterable[Alert]) -> list[AlertGroup]:
    """Alerts gathered per route and `group_by` values, in a stable order."""
    groups: dict[str, tuple[RouteNode, dict[str, str], list[Alert]]] = {}
    for alert in alerts:
        for route in match_routes(tree, alert.labels):
            key = group_key(route, alert.labels)
            groups.setdefault(key, (route, route.group_labels(alert.labels), []))[2].append(alert)
    return [
        AlertGroup(route, key, labels, tuple(sorted(members, key=lambda a: a.fingerprint)))
        for key, (route, labels, members) in sorted(groups.items())
    ]


@dataclass(frozen=True)
class SentNotification:
    """What was last sent for one group to one receiver: an entry of the notification log."""

    receiver: str
    group_id: str
    group_key: str
    sent_at: datetime
    firing: frozenset[str]
    resolved: frozenset[str]


@dataclass(frozen=True)
class Notification:
    """One message to one receiver about one group. `explains` lists the alerts muted
    because an alert of this group is their root cause, each with that cause."""

    receiver: str
    group_id: str
    group_key: str
    group_labels: Mapping[str, str]
    firing: tuple[Alert, ...]
    resolved: tuple[Alert, ...]
    explains: tuple[Inhibition, ...] = field(default=())

    def record(self, sent_at: datetime) -> SentNotification:
        return SentNotification(
            receiver=self.receiver, group_id=self.group_id, group_key=self.group_key, sent_at=sent_at,
            firing=frozenset(a.fingerprint for a in self.firing),
            resolved=frozenset(a.fingerprint for a in self.resolved),
        )


@dataclass(frozen=True)
class Muted:
    """Alerts not notified now, by fingerprint: silenced (with the silence ids), in a
    maintenance window (with the window names) or inhibited (with the cause)."""

    silenced: Mapping[str, list[int]]
    inhibited: Mapping[str, Inhibition]
    in_maintenance: Mapping[str, list[str]] = field(default_factory=dict)

    def __contains__(self, fingerprint: object) -> bool:
        return any(fingerprint in why for why in (self.silenced, self.inhibited, self.in_maintenance))


def mute(
    alerts: Iterable[Alert],
    *,
    silences: Sequence[Silence],
    inhibited: Mapping[str, Inhibition],
    now: datetime,
    windows: Mapping[str, MaintenanceWindow] | None = None,
) -> Muted:
    """Which alerts are muted at `now`, and why."""
    silenced: dict[str, list[int]] = {}
    in_maintenance: dict[str, list[str]] = {}
    open_windows = {name: w for name, w in (windows or {}).items() if w.is_open(now)}
    for alert in alerts:
        if ids := [s.id for s in silences if s.mutes(alert.labels, now)]:
            silenced[alert.fingerprint] = ids
        if names := [name for name, w in open_windows.items() if matches_all(w.matchers, alert.labels)]:
            in_maintenance[alert.fingerprint] = names
    return Muted(silenced, inhibited, in_maintenance)


def due_notifications(
    alerts: Sequence[Alert],
    *,
    tree: RouteNode,
    sent: Mapping[tuple[str, str], SentNotification],
    now: datetime,
    muted: Muted | None = None,
    send_resolved: Mapping[str, bool] | None = None,
) -> list[Notification]:
    """The notifications to send at `now`. Pending alerts are never notified; muted firing
    alerts are left out; a resolved alert is notified once, and only to receivers that were
    told it fired and want resolutions, muted or not: whoever was paged hears it is over,
    even when it was silenced after the page."""
    muted = muted or Muted({}, {})
    audible = [
        a for a in alerts
        if (a.state is AlertState.FIRING and a.fingerprint not in muted) or a.state is AlertState.RESOLVED
    ]
    explained: dict[str, list[Inhibition]] = {}
    for inhibition in muted.inhibited.values():
        explained.setdefault(inhibition.cause.fingerprint, []).append(inhibition)
    due = []
    for group in group_alerts(tree, audible):
        receiver = group.route.receiver
        wants_resolved = (send_resolved or {}).get(receiver, True)
        notification = _due(group, sent.get((receiver, group.id)), now, wants_resolved)
        if notification is not None:
            explains = tuple(i for a in notification.firing for i in explained.get(a.fingerprint, ()))
            due.append(replace(notification, explains=explains))
    return due


def _due(
    group: AlertGroup, last: SentNotification | None, now: datetime, wants_resolved: bool
) -> Notification | None:
    """Alertmanager's rule: a group is sent again after group_interval when its receiver has
    news (an alert fires that it was not told of, or, if it wants resolutions, one it was told
    of resolved), else only after repeat_interval. An alert silenced, or resolved for a
    receiver without `send_resolved`, is no news: the rest of its group is not sent again."""
    route = group.route
    firing = tuple(a for a in group.alerts if a.state is AlertState.FIRING)
    told = last.firing if last else frozenset()
    resolved = tuple(a for a in group.alerts if a.state is AlertState.RESOLVED and a.fingerprint in told)
    if not wants_resolved:
        resolved = ()
    if not firing and not resolved:
        return None
    if last is None or not last.firing:
        # A new group, or one whose alerts had all resolved: wait for more alerts to join.
        if not firing:
            return None
        started = min(a.fired_at or a.active_at for a in firing)
        ready = now >= started + timedelta(seconds=route.group_wait)
    elif resolved or not _known(firing, last):
        ready = now >= last.sent_at + timedelta(seconds=route.group_interval)
    else:
        ready = now >= last.sent_at + timedelta(seconds=route.repeat_interval)
    if not ready:
        return None
    return Notification(route.receiver, group.id, group.key, group.labels, firing, resolved)


def _known(firing: Sequence[Alert], last: SentNotification) -> bool:
    """Whether the receiver was told of every one of these firing alerts: each is in the last
    notification's firing set and has not fired again since."""
    return all(a.fingerprint in last.firing and not (a.fired_at and a.fired_at > last.sent_at)
               for a in firing)


def owed_resolutions(
    alerts: Iterable[Alert],
    *,
    tree: RouteNode,
    sent: Mapping[tuple[str, str], SentNotification],
    send_resolved: Mapping[str, bool] | None = None,
) -> set[str]:
    """The resolved alerts (by fingerprint) whose resolution some receiver still waits for: it
    was told the alert fires (the alert is in the firing set of its group's last notification
    to it) and it wants resolutions. Receivers and routes no longer in `tree` wait for none."""
    owed = set()
    for alert in alerts:
        if alert.state is not AlertState.RESOLVED:
            continue
        for route in match_routes(tree, alert.labels):
            if not (send_resolved or {}).get(route.receiver, True):
                continue
            last = sent.get((route.receiver, group_id(group_key(route, alert.labels))))
            if last is not None and alert.fingerprint in last.firing:
                owed.add(alert.fingerprint)
                break
    return owed
