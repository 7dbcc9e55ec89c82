"""The runbooks opsplane ships: each loads against the demo's inventory with the shop's names
as defaults and fills in to steps the inventory can run; against an inventory without those
names it still loads, its defaults dropped so the parameters must be given; every built-in
alert rule that names a runbook names a shipped one that says it answers that alert; and the
notification of such an alert says how to run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsplane.alerts.messages import outbox_message
from opsplane.alerts.models import AlertingSettings
from opsplane.alerts.pack import builtin_rules
from opsplane.alerts.routing import Notification
from opsplane.alerts.state import annotate
from opsplane.config.loader import loads as load_inventory
from opsplane.drivers.channels.console import format_console
from opsplane.runbooks.loader import BUILTIN_DIR, catalog, cross_check
from opsplane.runbooks.models import named_runbook, render, resolve_parameters
from tests.alerts.factories import alert
from tests.runbooks.shipped import SHIPPED, demo_inventory
from tests.support.cli import Opsplane

# Actions a platform engineer would not let run with nobody there.
MINIMAL = "platform: {name: mini}\nservices:\n  web: {port: 8080, checks: [{type: http}]}\n"
NEVER_UNATTENDED = ("rollback", "failover", "flush-cache", "scale", "silence")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, dict[str, object]]:
    base = tmp_path_factory.mktemp("demo")
    inventory = demo_inventory(base)
    return inventory, catalog(inventory, base)


def test_every_shipped_runbook_loads_against_the_demo_and_fills_in_to_runnable_steps(shipped: tuple) -> None:
    inventory, found = shipped
    assert set(SHIPPED) <= set(found)
    for name in SHIPPED:
        loaded = found[name]
        assert loaded.builtin and Path(loaded.file).parent == BUILTIN_DIR
        values, problems = resolve_parameters(loaded.runbook, {})
        assert problems == [], name  # the shop's names are the defaults: nothing to give
        # the filled-in runbook names checks the demo has and PromQL opsplane parses
        assert cross_check(render(loaded.runbook, values), inventory) == [], name


def test_reads_are_safe_and_changes_wait_for_a_person(shipped: tuple) -> None:
    _, found = shipped
    for name in SHIPPED:
        for step in found[name].runbook.steps:
            if step.kind in ("check", "query", "wait_until", "decide", "note"):
                assert step.safe, f"{name}: {step.id}"
            if step.kind == "action":
                assert not step.safe, f"{name}: {step.id}"
                assert step.action not in NEVER_UNATTENDED or _asked_before(found[name].runbook, step.id), \
                    f"{name}: {step.id} runs without a confirmation or approval before it"


def _asked_before(runbook: object, step_id: str) -> bool:
    """Whether a confirm or approve step comes right before `step_id` in the file."""
    ids = [s.id for s in runbook.steps]  # type: ignore[attr-defined]
    before = runbook.steps[ids.index(step_id) - 1]  # type: ignore[attr-defined]
    return before.kind in ("confirm", "approve")


def test_in_an_inventory_without_the_shops_names_they_load_and_ask_for_the_parameters(tmp_path: Path) -> None:
    inventory = load_inventory(MINIMAL, str(tmp_path / "opsplane.yaml"))
    found = catalog(inventory, tmp_path)
    assert set(SHIPPED) <= set(found)
    errors = found["high-error-rate"].runbook
    assert errors.parameters["service"].default is None  # orders is not there
    assert errors.parameters["window"].default == "5m"  # text keeps its default
    _, problems = resolve_parameters(errors, {})
    assert problems == ["parameter 'service' is required (the service whose answers fail): "
                        "--param service=VALUE"]
    values, problems = resolve_parameters(errors, {"service": "web", "check": "http"})
    assert problems == [] and cross_check(render(errors, values), inventory) == []
    # the shop's check name is not this inventory's: the filled-in runbook says so, with the way out
    values, _ = resolve_parameters(errors, {"service": "web"})
    [(_, said)] = [p for p in cross_check(render(errors, values), inventory) if p[0][-1] == "check"][:1]
    assert "web has no check 'health'; its checks: http" in said


def test_a_users_runbook_of_the_same_name_replaces_the_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "mine.yaml").write_text(
        "name: high-error-rate\ntitle: Ours\nsteps:\n  - {id: look, kind: note, text: ours}\n")
    inventory = load_inventory("platform: {name: mini}\nruntime: {}\nrunbooks: {dir: runbooks}\n",
                               str(tmp_path / "opsplane.yaml"))
    found = catalog(inventory, tmp_path)
    assert found["high-error-rate"].runbook.title == "Ours" and not found["high-error-rate"].builtin
    assert found["disk-full"].builtin


def test_every_pack_rule_that_names_a_runbook_names_a_shipped_one_for_its_alert(shipped: tuple) -> None:
    _, found = shipped
    named = {(r.name, named_runbook(r.runbook)) for r in builtin_rules(AlertingSettings().builtin_rules)}
    named = {(alertname, runbook) for alertname, runbook in named if runbook}
    assert {runbook for _, runbook in named} >= {"high-error-rate", "high-response-time", "database-issues",
                                                 "cache-issues", "disk-full", "high-cpu", "high-memory",
                                                 "database-failure-recovery"}
    for alertname, runbook in named:
        assert runbook in found, f"{alertname} names {runbook}, which opsplane does not ship"
        assert alertname in found[runbook].runbook.for_.alerts, f"{runbook} does not answer {alertname}"
    # and each runbook's alerts are rules of the pack that name it
    for name in SHIPPED:
        for alertname in found[name].runbook.for_.alerts:
            assert (alertname, name) in named, f"{name} answers {alertname}, whose rule names another runbook"


def test_the_notification_says_how_to_run_the_runbook_for_the_alerts_service() -> None:
    rules = {(r.name, r.severity.value): r for r in builtin_rules(AlertingSettings().builtin_rules)}
    errors = rules[("HighErrorRate", "P1")]
    labels = {"service": "orders", "env": "production"}
    firing = alert("HighErrorRate", service="orders", env="production")
    firing = firing.__class__(**{**firing.__dict__, "annotations": annotate(errors, labels, 0.05)})
    group = Notification(receiver="oncall", group_id="g1", group_key="{}:{}", group_labels={},
                         firing=(firing,), resolved=())
    message = outbox_message(group, previous=None)
    assert message.runbook == "opsplane runbook run high-error-rate --param service=orders"
    assert "runbook: opsplane runbook run high-error-rate --param service=orders" in format_console(message)
    # a rule that links to a document still gives its link
    backups = rules[("BackupFailed", "P1")]
    assert annotate(backups, {"policy": "pg"}, 1.0) == {
        "summary": "the last  backup of pg failed (1 in a row)", "runbook_url": "runbooks/backup-failed.md"}


def test_config_validate_refuses_a_rule_naming_a_runbook_that_does_not_exist(tmp_path: Path) -> None:
    rules = [{"name": "Mine", "expr": "up == 0", "severity": "P2", "runbook": "high-eror-rate"},
             {"name": "Linked", "expr": "up == 0", "severity": "P2", "runbook": "runbooks/mine.md"}]
    opsplane = Opsplane(tmp_path, {"platform": {"name": "shop"}, "alerting": {"rules": rules}})
    ran = opsplane("config", "validate", code=3)
    assert "opsplane.yaml:" in ran.stderr and "alerting.rules[0].runbook" in ran.stderr
    assert "no runbook 'high-eror-rate'; did you mean 'high-error-rate'?" in ran.stderr
    assert "rules[1]" not in ran.stderr  # a link is not looked up
    rules[0]["runbook"] = "high-error-rate"
    opsplane = Opsplane(tmp_path, {"platform": {"name": "shop"}, "alerting": {"rules": rules}})
    assert "valid" in opsplane("config", "validate").stdout


def test_the_shipped_runbooks_are_package_data_so_an_installed_opsplane_has_them() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["opsplane"]
    package = BUILTIN_DIR.parent.parent
    files = sorted(BUILTIN_DIR.glob("*.yaml"))
    assert [f.stem for f in files if f.stem in SHIPPED] == list(SHIPPED)
    for file in files:
        assert any(file.relative_to(package).match(pattern) for pattern in patterns), file
