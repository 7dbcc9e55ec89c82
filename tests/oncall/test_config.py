"""The `oncall:` section in the inventory: defaults from the manual, and every name it uses
checked at load time with file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from opsplane.config.loader import load_with_warnings, loads
from opsplane.errors import ConfigError
from tests.oncall.factories import oncall_data
from tests.support.cli import Opsplane


def _load(oncall: dict[str, Any], **top: Any) -> Any:
    text = yaml.safe_dump({"platform": {"name": "shop"}, **top, "oncall": oncall}, sort_keys=False)
    return loads(text, "opsplane.yaml")


def _problems(oncall: dict[str, Any], **top: Any) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        _load(oncall, **top)
    return [str(p) for p in raised.value.problems]


def test_without_the_section_every_severity_escalates_as_the_manual_says() -> None:
    inventory = loads("platform: {name: shop}\n")
    offsets = {sev: [s.delay for s in inventory.oncall.policy_for(sev).steps] for sev in ("P0", "P1")}
    assert offsets == {"P0": [0, 300, 1500, 900, 900], "P1": [0, 900, 900]}
    assert inventory.oncall.policy_for("P0").steps[0].notify == ["layer:primary", "channel:incidents"]
    assert [str(v) for v in inventory.oncall.policy_for("P0").steps[0].via] == ["pagerduty", "sms", "phone"]
    assert inventory.oncall.policy_for("P3").steps[0].notify == ["channel:ops-team"]


def test_a_valid_section_loads() -> None:
    settings = _load(oncall_data()).oncall
    assert settings.schedules["platform"].layers["primary"].rotation == ["ana", "ben", "cleo"]


def test_unknown_people_in_rotations_roles_and_overrides_are_located() -> None:
    data = oncall_data(roles={"team_lead": "tine"})
    data["schedules"]["platform"]["layers"]["secondary"]["rotation"] = ["ben", "bob"]
    data["schedules"]["platform"]["overrides"] = [
        {"layer": "primray", "person": "zoe", "start": "2026-03-10T12:00:00", "end": "2026-03-11T12:00:00"}]
    problems = _problems(data)
    assert len(problems) == 4
    assert any(p.startswith("opsplane.yaml:") and p.endswith(
        "oncall.roles.team_lead: unknown person 'tine'; did you mean 'tina'?") for p in problems)
    assert any(p.endswith("oncall.schedules.platform.layers.secondary.rotation[1]: unknown person 'bob'")
               for p in problems)
    assert any(p.endswith("overrides[0].layer: unknown layer 'primray'; did you mean 'primary'?")
               for p in problems)
    assert any(p.endswith("overrides[0].person: unknown person 'zoe'") for p in problems)
    assert all(p.split(":")[1].isdigit() for p in problems)  # each names its line


def test_a_policy_naming_an_unknown_schedule_layer_person_role_or_channel_is_refused() -> None:
    policy = {"steps": [{"notify": ["schedule:payments/primary", "schedule:platform/standby",
                                    "person:zoe", "role:cto", "channel:pager", "channel:incidents"]}]}
    problems = _problems(oncall_data(policies={"mine": policy}, severities={"P0": "mine", "P1": "nope"}),
                         channels={"named": {"incidents": {"type": "console"}}})
    endings = [p.split(": ", 1)[1] for p in problems]
    assert endings == [
        "oncall.policies.mine.steps[0].notify[0]: unknown schedule 'payments'",
        "oncall.policies.mine.steps[0].notify[1]: schedule 'platform' has no layer 'standby'",
        "oncall.policies.mine.steps[0].notify[2]: unknown person 'zoe'",
        "oncall.policies.mine.steps[0].notify[3]: unknown role 'cto'; assign it under oncall.roles",
        "oncall.policies.mine.steps[0].notify[4]: unknown channel 'pager'; define it under channels.named",
        "oncall.severities.P1: unknown policy 'nope'",
    ]


def test_layer_targets_need_a_schedule() -> None:
    policy = {"steps": [{"notify": ["layer:primary"]}]}
    [problem] = _problems({"policies": {"mine": policy}})
    assert problem.endswith("'layer:primary' needs an on-call schedule; define one under oncall.schedules")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timezone": "Europe/Berln"}, "unknown time zone 'Europe/Berln'"),
        ({"handoff": {"day": "monday"}}, "expected 'mon', 'tue', 'wed', 'thu', 'fri', 'sat' or 'sun'"),
        ({"layers": {}}, "expected at least one item"),
    ],
)
def test_a_malformed_schedule_says_what_was_expected(change: dict[str, Any], message: str) -> None:
    data = oncall_data()
    data["schedules"]["platform"].update(change)
    problems = _problems(data)
    assert any(message in p for p in problems), problems


def test_a_malformed_target_says_which_forms_there_are() -> None:
    [problem] = _problems(oncall_data(policies={"mine": {"steps": [{"notify": ["primary"]}]}}))
    assert "invalid target 'primary': expected layer:<layer>, schedule:<schedule>/<layer>" in problem


def test_the_example_in_the_on_call_docs_loads() -> None:
    text = (Path(__file__).parents[2] / "docs" / "oncall.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    named = ", ".join(f"{name}: {{type: console}}" for name in
                      ("alerts", "ops-mail", "sms-gateway", "voice-gateway", "incidents", "pagerduty"))
    inventory = loads(f"platform: {{name: shop}}\nchannels: {{named: {{{named}}}}}\n" + block)
    assert inventory.oncall.policy_for("P1").repeat == 1
    assert inventory.oncall.schedules["platform"].overrides[0].person == "cleo"
    assert inventory.oncall.contact_channels["sms"] == "sms-gateway"


# --- PagerDuty after a policy's first step (docs/decisions/0010) --------------------------------

PAGERDUTY = {"named": {"pager": {"type": "pagerduty", "routing_key": "env:PD_KEY"},
                       "sms-gateway": {"type": "webhook", "url": "http://127.0.0.1:9/sms"}}}
LATE_PAGERDUTY = {"steps": [{"notify": ["layer:primary"], "via": ["pagerduty"]},
                            {"delay": "10m", "notify": ["layer:secondary"], "via": ["sms", "pagerduty"]},
                            {"delay": "10m", "notify": ["role:team_lead"], "via": ["pagerduty"]}]}


def _warnings(tmp_path: Path, oncall: dict[str, Any], channels: dict[str, Any] = PAGERDUTY) -> list[str]:
    path = tmp_path / "opsplane.yaml"
    path.write_text(yaml.safe_dump({"platform": {"name": "shop"}, "channels": channels, "oncall": oncall},
                                   sort_keys=False))
    _, warnings = load_with_warnings(path)
    return [str(w).replace(f"{path}:", "opsplane.yaml:", 1) for w in warnings]


def test_pagerduty_after_a_policys_first_step_is_a_located_warning(tmp_path: Path) -> None:
    data = oncall_data(contact_channels={"pagerduty": "pager", "sms": "sms-gateway"},
                       policies={"p0": LATE_PAGERDUTY, "p1": {"steps": LATE_PAGERDUTY["steps"][0:1]}})
    [warning] = _warnings(tmp_path, data)
    where, field, message = warning.split(": ", 2)
    line = int(where.split(":")[1])
    text = (tmp_path / "opsplane.yaml").read_text().splitlines()
    assert field == "oncall.policies.p0.steps[1].via[1]"
    assert (text[line - 2].strip(), text[line - 1].strip()) == ("- sms", "- pagerduty")
    assert message == (
        "PagerDuty in steps 2 and 3 pages no one: an incident's PagerDuty events share one dedup_key, "
        "so they join the PagerDuty incident step 1 opened, and PagerDuty's own escalation policy "
        "decides whom it pages next; step 3 reaches its people by nothing else: add sms, phone, "
        "slack or email to page them from opsplane")


def test_the_built_in_p1_escalating_only_by_pagerduty_is_warned_about_once_a_pagerduty_channel_exists(
        tmp_path: Path) -> None:
    data = oncall_data(contact_channels={"pagerduty": "pager"},
                       policies={"p0": {"steps": LATE_PAGERDUTY["steps"][0:1]}})
    [warning] = _warnings(tmp_path, data)
    assert warning.startswith("opsplane.yaml:")
    assert ": the built-in policy 'p1' (used by P1): PagerDuty in steps 2 and 3 pages no one" in warning
    assert warning.endswith("; define oncall.policies.p1 to change it")


def test_a_posting_to_a_pagerduty_channel_and_repeats_count_too(tmp_path: Path) -> None:
    policy = {"steps": [{"notify": ["channel:pager"]}], "repeat": 2}
    data = oncall_data(policies={"loud": policy, "p0": {"steps": [{"notify": ["channel:pager"]}]},
                                 "p1": {"steps": [{"notify": ["channel:pager"]}]}})
    [warning] = _warnings(tmp_path, data)
    assert ": oncall.policies.loud.repeat: PagerDuty in the repeats pages no one" in warning


def test_without_a_pagerduty_channel_or_with_pagerduty_only_first_there_is_nothing_to_say(
        tmp_path: Path) -> None:
    first_only = {"steps": [{"notify": ["layer:primary"], "via": ["pagerduty", "sms"]},
                            {"delay": "5m", "notify": ["layer:secondary"], "via": ["sms"]}]}
    assert _warnings(tmp_path, oncall_data(), channels={"named": {}}) == []
    contacts = {"pagerduty": "pager", "sms": "sms-gateway"}
    assert _warnings(tmp_path, oncall_data(policies={"p0": first_only, "p1": first_only},
                                           contact_channels=contacts)) == []


@pytest.mark.slow
def test_config_validate_prints_the_warning_with_its_line_and_still_exits_0(tmp_path: Path) -> None:
    data = oncall_data(contact_channels={"pagerduty": "pager", "sms": "sms-gateway"},
                       policies={"p0": LATE_PAGERDUTY, "p1": {"steps": LATE_PAGERDUTY["steps"][0:1]}})
    opsplane = Opsplane(tmp_path, {"platform": {"name": "shop"}, "channels": PAGERDUTY, "oncall": data})

    ran = opsplane("config", "validate")
    [warning] = ran.stderr.strip().splitlines()
    assert warning.startswith("warning: opsplane.yaml:")
    assert warning.split(": ")[2] == "oncall.policies.p0.steps[1].via[1]"
    assert ran.stdout.startswith("opsplane.yaml: valid: platform shop")
    [listed] = opsplane.json("config", "validate")["warnings"]
    assert (listed["field"], listed["line"]) == ("oncall.policies.p0.steps[1].via[1]",
                                                 int(warning.split(":")[2]))
