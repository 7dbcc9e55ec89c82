"""Every kind of event reads as a sentence on the dashboard, the incident timeline and in
`opsplane events`: never a Python repr of its details."""

from __future__ import annotations

import ast
import html
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opsplane.alerts import service as alerting
from opsplane.alerts.flows import Alerting
from opsplane.alerts.models import AlertingSettings
from opsplane.alerts.state import AlertState, Sample
from opsplane.events.summary import DESCRIBERS, summarise
from opsplane.health.models import ProbeResult, State
from opsplane.incidents import service as incidents
from opsplane.server import ControlPlane

PACKAGE = Path(__file__).resolve().parents[2] / "opsplane"
KIND = re.compile(r"^[a-z_]+\.[a-z_]+$")
# The kinds made from a value: alert.<state of the alert>, notify.<outcome of a delivery>.
MADE_FROM_VALUES = {
    "alert.": {f"alert.{state.value}" for state in AlertState},
    "notify.": {"notify.delivered", "notify.retry", "notify.failed", "notify.dead", "notify.withdrawn"},
}
REPRS = ("{", "}", "'", "[", "]", "None", "True", "False", "0.019037883636991926")


RECORDERS = ("record", "_record", "_record_lifecycle", "RuntimeEvent")


def _name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def recorded_kinds() -> set[str]:
    """Every event kind the code records: the `kind` of each call that records an event (a
    string, a module's constant, either branch of a condition, an f-string's stem), the
    strings handed to the runtime's and incidents' own recorders, and defaults of `kind`
    parameters."""
    kinds: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                     and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                     for target in node.targets if isinstance(target, ast.Name)}
        for node in ast.walk(tree):
            found: list[ast.expr | None] = []
            if isinstance(node, ast.Call):
                found += [keyword.value for keyword in node.keywords if keyword.arg == "kind"]
                # a recorder called, or handed to another call (asyncio.to_thread(record, kind))
                if any(_name(part) in RECORDERS for part in (node.func, *node.args)):
                    found += node.args
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                arguments = node.args.args + node.args.kwonlyargs
                defaults = [*node.args.defaults, *node.args.kw_defaults]
                found += [default for argument, default in zip(reversed(arguments), reversed(defaults),
                                                               strict=False) if argument.arg == "kind"]
            for expression in found:
                kinds |= _kinds_of(expression, constants, path)
    return kinds


def _kinds_of(node: ast.expr | None, constants: Mapping[str, str], path: Path) -> set[str]:
    if isinstance(node, ast.IfExp):
        return _kinds_of(node.body, constants, path) | _kinds_of(node.orelse, constants, path)
    if isinstance(node, ast.JoinedStr):
        stem = node.values[0]
        if isinstance(stem, ast.Constant) and str(stem.value) in MADE_FROM_VALUES:
            return MADE_FROM_VALUES[str(stem.value)]
        raise AssertionError(f"{path}: a kind made by an f-string this test does not know: "
                             f"{ast.unparse(node)}; add it to MADE_FROM_VALUES")
    value = node.value if isinstance(node, ast.Constant) else (
        constants.get(node.id) if isinstance(node, ast.Name) else None)
    return {value} if isinstance(value, str) and KIND.match(value) else set()


def test_the_walk_finds_the_kinds_of_every_domain() -> None:
    # the walk itself must see what it is meant to, or the next test proves nothing
    found = recorded_kinds()
    for kind in ("alert.firing", "alert.inactive", "alert.rule_recovered", "check.state_changed",
                 "incident.opened", "notify.retry", "oncall.handoff", "runtime.started", "runtime.exited",
                 "maintenance.notice_scheduled", "control_plane.stopped", "ui.login_failed", "token.revoked"):
        assert kind in found


def test_every_kind_of_event_recorded_has_a_sentence_of_its_own() -> None:
    missing = sorted(recorded_kinds() - set(DESCRIBERS))
    assert missing == [], f"add a sentence for these kinds to opsplane/events/summary.py: {missing}"


class Everywhere(Mapping[str, Any]):
    """Details that hold `value` under every key a sentence may read."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __getitem__(self, key: str) -> Any:
        return self.value

    def __iter__(self) -> Iterator[str]:
        return iter(("labels", "details", "more"))

    def __len__(self) -> int:
        return 3


NESTED: list[Any] = [
    None, True, False, 0.019037883636991926, 3, "", {}, [],
    {"env": "production", "service": None, "deeper": {"ratio": 0.019037883636991926, "flags": [None, True]}},
    [None, {"name": "HighErrorRate", "labels": {"service": "orders"}}, "plain", ["a", None]],
]


@pytest.mark.parametrize("kind", sorted({*DESCRIBERS, "deploy.finished", "something.new"}))
@pytest.mark.parametrize("value", NESTED, ids=lambda v: type(v).__name__)
def test_no_sentence_shows_a_repr_whatever_the_details_hold(kind: str, value: Any) -> None:
    for details in (Everywhere(value), {"detail": value}):
        line = summarise(kind, details, target="orders/http", service="orders", outcome="ok")
        assert not [shown for shown in REPRS if shown in line], (kind, value, line)


def test_nested_details_are_written_as_people_write_them() -> None:
    line = summarise("something.new", {"labels": {"service": "orders", "env": "production"},
                                       "ids": [1, 2], "gone": None, "ok": True})
    assert line == "labels: service=orders, env=production, ids: 1, 2, ok: yes"


def test_an_adoption_counts_its_instances_as_people_count_them() -> None:
    def adopted(pids: list[int]) -> str:
        return summarise("runtime.adopted", {"instances": len(pids), "pids": pids, "previous_supervisor": 41},
                         service="orders")

    assert adopted([7]) == "Adopted orders (1 running instance, pid 7) from supervisor 41, which was gone"
    assert adopted([7, 9]) == ("Adopted orders (2 running instances, pids 7, 9) from supervisor 41, "
                               "which was gone")


# --- the events real code records, as the dashboard and the timeline show them -------------------


def _what(page: str, section: str) -> list[str]:
    """The text of the 'What' cells of a table in `section` of a page."""
    part = page.split(f'id="{section}"')[1].split("</section>")[0]
    cells = re.findall(r"<td>(.*?)</td>", part, flags=re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells]


def test_the_events_of_an_alert_and_its_incident_read_as_sentences(
    signed_in: TestClient, plane: ControlPlane
) -> None:
    catalog = next(t for t in plane.targets if t.id == "catalog/http")
    plane.health.on_result(catalog, ProbeResult(State.OK, "HTTP 200 in 2 ms", 0.002), 0.0)  # its first result
    plane.health.write(plane.health.take_pending())
    series: list[Sample] = [({"service": "catalog", "env": "production"}, 0.019037883636991926)]
    settings = AlertingSettings.model_validate({"builtin_rules": {"enabled": False}, "rules": [
        {"name": "HighErrorRate", "expr": "errors > 0.01", "severity": "P1", "unit": "ratio", "for": "1m",
         "annotations": {"summary": "{{ $labels.service }} answers {{ $value }} of requests with 5xx"}}],
        "route": {"receiver": "default", "group_wait": "0s"}})
    cycle = Alerting(settings, store=plane.store, evaluate=lambda expr, at: series, clock=plane.clock,
                     incidents=plane.inventory.incidents)
    cycle.run_once()
    plane.clock.advance(60)
    cycle.run_once()
    with plane.store.session() as session:
        alerting.create_silence(session, matchers=['service="catalog"'], author="ana", comment="deploy",
                                starts_at=plane.clock.now(), ends_at=plane.clock.now().replace(year=2099),
                                now=plane.clock.now(), actor="cli:ana")
        (incident,) = incidents.get_all(session)
        incidents.add_note(session, incident_id=incident.id, text="Pool exhausted", actor="cli:ana",
                           now=plane.clock.now())
    series.clear()
    plane.clock.advance(15)
    cycle.run_once()

    listed = _what(signed_in.get("/ui/events?limit=200").text, "event-list")
    assert "Check http of catalog: new \u2192 OK: HTTP 200 in 2 ms" in listed
    assert ("Alert HighErrorRate firing at 1.9% (env=production, service=catalog): "
            "catalog answers 1.9% of requests with 5xx") in listed
    assert "Alert HighErrorRate pending at 1.9% (env=production, service=catalog)" in listed
    assert "Notified default of firing HighErrorRate (catalog)" in listed
    assert "Alert HighErrorRate resolved (env=production, service=catalog)" in listed
    assert any(line.startswith('Silence 1 created for service="catalog" until 2099-') for line in listed)
    assert "INC-1 opened (P1): catalog answers 1.9% of requests with 5xx" in listed
    for line in listed:
        assert not [shown for shown in ("{", "'", "None") if shown in line], line

    timeline = _what(signed_in.get(f"/ui/incidents/INC-{incident.id}").text, "incident-timeline")
    assert "Check http of catalog: new \u2192 OK: HTTP 200 in 2 ms" in timeline
    assert "INC-1 note: Pool exhausted" in timeline
    for line in timeline:
        assert not [shown for shown in ("{", "'", "None", " -> ") if shown in line], line


def test_opsplane_events_prints_the_same_sentences(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from opsplane.events import service as events
    from opsplane.events.cli import app
    from opsplane.store import Store

    url = f"sqlite:///{tmp_path}/opsplane.db"
    store = Store.open(url)
    with store.session() as session:
        events.record(session, kind="alert.firing", actor="alerting", target="HighErrorRate",
                      service="orders", outcome="firing", details={
                          "labels": {"alertname": "HighErrorRate", "severity": "P1", "service": "orders"},
                          "value": 0.019037883636991926, "unit": "ratio", "from": "pending",
                          "annotations": {"summary": "orders fails"}})
    store.close()
    monkeypatch.setenv("OPSPLANE_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "250")
    shown = CliRunner().invoke(app, [])
    assert shown.exit_code == 0, shown.output
    assert "Alert HighErrorRate firing at 1.9% (service=orders): orders fails" in shown.output
    assert "{" not in shown.output and "'" not in shown.output
