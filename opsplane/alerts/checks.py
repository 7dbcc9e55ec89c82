"""Cross-checks of the alerting section that need more than one field or a query parser.

`expression_problems` is meant for the inventory loader: it reports each rule whose `expr`
the parser refuses, at the rule's `expr`, so the operator sees file, line and construct.
The parser is passed in, which keeps this module free of the query engine.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Sequence

from opsplane.alerts.inhibition import COMPONENT_LABEL
from opsplane.alerts.models import AlertingSettings

Problem = tuple[tuple[str | int, ...], str]


def expression_problems(settings: AlertingSettings, parse: Callable[[str], object]) -> list[Problem]:
    """One problem per rule whose expression `parse` refuses (by raising ValueError or an
    OpsplaneError); the message names the refused construct when the parser gives one."""
    from opsplane.errors import OpsplaneError

    problems: list[Problem] = []
    for index, rule in enumerate(settings.rules):
        try:
            parse(rule.expr)
        except (ValueError, OpsplaneError) as exc:
            construct = getattr(exc, "construct", None)
            detail = f" (unsupported: {construct})" if construct and construct not in str(exc) else ""
            problems.append((("alerting", "rules", index, "expr"), f"rule {rule.name}: {exc}{detail}"))
    return problems


def label_problems(settings: AlertingSettings, components: Sequence[str]) -> list[Problem]:
    """Rules whose static `service` label names no component: inhibition by `depends_on`
    could never apply to their alerts, which is almost always a typo."""
    known = set(components)
    problems: list[Problem] = []
    for index, rule in enumerate(settings.rules):
        named = rule.labels.get(COMPONENT_LABEL)
        if named is not None and named not in known:
            problems.append((("alerting", "rules", index, "labels", COMPONENT_LABEL),
                             f"unknown component {named!r}; expected one of {', '.join(sorted(known))}"))
    return problems



def channel_problems(settings: AlertingSettings, channels: Collection[str]) -> list[Problem]:
    """Receivers naming a channel that `channels.named` does not define."""
    problems: list[Problem] = []
    for name, receiver in settings.receivers.items():
        for index, channel in enumerate(receiver.channels):
            if channel not in channels:
                close = difflib.get_close_matches(channel, list(channels), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else (
                    "; define it under channels.named" if not channels else
                    f"; expected one of {', '.join(sorted(channels))}")
                problems.append((("alerting", "receivers", name, "channels", index),
                                 f"unknown channel {channel!r}{hint}"))
    return problems
