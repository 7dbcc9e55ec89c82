"""The inventory's SLOs are checked before anything runs: every mistake named with its file, line
and field (an unknown service or component, a component without checks, a selector the engine
cannot read as a plain selector, an SLO over metrics nobody scrapes), exit code 3."""

from __future__ import annotations

import re
import textwrap

import pytest

from opsplane.config.loader import loads
from opsplane.errors import ConfigError

BASE = """\
version: 1
platform: {name: shop}
services:
  gateway: {port: 8080, metrics_path: /metrics, checks: [{type: http, path: /health}]}
  payments: {port: 8081}
slos:
"""
EVENTS = "sli: {events: {bad: 'http_requests_total{status=~\"5..\"}', total: http_requests_total}}"


def problems(slos: str, base: str = BASE) -> str:
    with pytest.raises(ConfigError) as caught:
        loads(base + textwrap.indent(textwrap.dedent(slos), "  "))
    assert caught.value.exit_code == 3
    return str(caught.value)


@pytest.mark.parametrize(("slos", "line", "expected"), [
    (f"gw: {{service: gatewy, objective: 99.9%, {EVENTS}}}\n", 7,
     r"slos\.gw\.service: unknown component 'gatewy'; did you mean 'gateway'\?"),
    ("gw: {service: gateway, objective: 99%, sli: {checks: {component: payment}}}\n", 7,
     r"slos\.gw\.sli\.checks\.component: unknown component 'payment'; did you mean 'payments'\?"),
    ("pay: {service: payments, objective: 99%, sli: {checks: {}}}\n", 7,
     r"slos\.pay\.service: payments has no checks: a checks SLI counts their results"),
    ("gw:\n  service: gateway\n  objective: 99%\n  sli: {events: {bad: 'rate(x[5m])', total: x_total}}\n", 10,
     r"slos\.gw\.sli\.events\.bad: 'rate\(x\[5m\]\)' must be a plain selector"),
    ("gw:\n  service: gateway\n  objective: 99%\n  sli: {events: {good: 'x_total{', total: x_total}}\n", 10,
     r"slos\.gw\.sli\.events\.good: "),
    ("gw:\n  service: gateway\n  objective: 99%\n  sli:\n"
     "    latency: {histogram: '{le=\"1\"}', threshold: 1s}\n", 11,
     r"slos\.gw\.sli\.latency\.histogram: '\{le=\"1\"\}' must name its metric"),
    ("gw:\n  service: gateway\n  objective: 99%\n  budgeting: timeslices\n  timeslice: 2d\n"
     "  " + EVENTS + "\n", 11,
     r"slos\.gw\.timeslice: a time slice may be a day at most"),
])
def test_a_mistake_in_an_slo_is_named_with_its_line_and_field(slos: str, line: int, expected: str) -> None:
    message = problems(slos)
    assert re.search(rf"opsplane\.yaml:{line}:\d+: ", message), message
    assert re.search(expected, message), message


def test_an_slo_over_metrics_nobody_scrapes_is_refused_and_says_which() -> None:
    base = BASE.replace(", metrics_path: /metrics", "")
    message = problems(f"gw: {{service: gateway, objective: 99.9%, {EVENTS}}}\n", base)
    assert re.search(r"opsplane\.yaml:7:\d+: slos\.gw\.sli\.events\.total: nothing is scraped, so "
                     r"http_requests_total has no samples: give gateway .* a metrics_path", message), message


def test_with_prometheus_answering_nothing_need_be_scraped() -> None:
    base = BASE.replace(", metrics_path: /metrics", "") + "metrics: {source: prometheus, prometheus_url: " \
        "http://127.0.0.1:9090}\n"
    base, slos = base.split("slos:\n")
    slo = f"  gw: {{service: gateway, objective: 99.9%, {EVENTS}}}\n"
    inv = loads(base + "slos:\n" + slo + slos)
    assert list(inv.slos) == ["gw"]
