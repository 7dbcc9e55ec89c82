"""The example inventories load; values keep their meaning; `opsplane config` works."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsplane.config.cli import app as config_app
from opsplane.config.loader import load, loads
from opsplane.config.models import CHECK_TYPES, Criticality, HostCheck, HttpCheck
from opsplane.config.schema import SCHEMA_DRAFT, json_schema
from opsplane.config.types import SecretRef
from opsplane.errors import ConfigError, SecretError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SEED = EXAMPLES / "seed-platform.yaml"
MINIMAL = EXAMPLES / "minimal.yaml"

# The "Service Inventory" table of the seed operations manual: name -> (section, container,
# port, criticality).
SEED_TABLE = {
    "backend": ("services", "ecommerce_backend", 8000, "critical"),
    "ai-gateway": ("services", "ecommerce_ai_gateway", 8001, "critical"),
    "recommendation": ("services", "ecommerce_recommendation", 8002, "high"),
    "fraud-detection": ("services", "ecommerce_fraud", 8003, "critical"),
    "search": ("services", "ecommerce_search", 8004, "high"),
    "chatbot": ("services", "ecommerce_chatbot", 8005, "medium"),
    "pricing": ("services", "ecommerce_pricing", 8006, "high"),
    "forecasting": ("services", "ecommerce_forecasting", 8007, "medium"),
    "visual-recognition": ("services", "ecommerce_vision", 8008, "medium"),
    "postgres-main": ("databases", "ecommerce_postgres", 5432, "critical"),
    "postgres-ai": ("databases", "ecommerce_postgres_ai", 5433, "critical"),
    "redis": ("caches", "ecommerce_redis", 6379, "critical"),
    "pgbouncer": ("services", "ecommerce_pgbouncer", 6432, "critical"),
    "nginx": ("proxies", "ecommerce_nginx", 443, "critical"),
    "prometheus": ("services", "ecommerce_prometheus", 9090, "high"),
    "grafana": ("services", "ecommerce_grafana", 3000, "high"),
}
AI_SERVICES = ["recommendation", "fraud-detection", "search", "chatbot", "pricing",
               "forecasting", "visual-recognition"]


# --- the examples -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [SEED, MINIMAL], ids=lambda p: p.name)
def test_example_inventories_load(path: Path) -> None:
    inventory = load(path)

    assert inventory.platform.name
    assert any(component.checks for _, _, component in inventory.components())


def test_seed_platform_holds_the_sixteen_components_of_the_manuals_table() -> None:
    inventory = load(SEED)

    found = {
        name: (section, component.container, component.port, str(component.criticality))
        for section, name, component in inventory.components()
        if section != "hosts"
    }
    assert found == SEED_TABLE
    assert len(found) == 16
    assert list(inventory.hosts) == ["app-server"]
    assert [type(check) for check in inventory.hosts["app-server"].checks] == [HostCheck]


def test_seed_platform_checks_follow_the_manuals_health_check_column() -> None:
    inventory = load(SEED)

    def checks(name: str) -> list[tuple[str, str | None]]:
        return [(check.type, getattr(check, "path", None))
                for check in inventory.component(name).checks]

    assert checks("backend") == [("http", "/health/")]
    assert all(checks(name) == [("http", "/health")] for name in ["ai-gateway", *AI_SERVICES])
    assert checks("postgres-main") == checks("postgres-ai") == [("postgres", None)]
    assert checks("redis") == [("redis", None)]
    assert checks("pgbouncer") == [("tcp", None)]
    assert checks("nginx") == [("http", "/"), ("tls", None), ("tcp", None)]
    assert checks("prometheus") == [("http", "/-/healthy")]
    assert checks("grafana") == [("http", "/api/health")]


def test_seed_platform_dependencies_follow_the_architecture_diagram() -> None:
    inventory = load(SEED)

    def deps(name: str) -> list[str]:
        return inventory.component(name).depends_on

    assert deps("nginx") == ["backend", "ai-gateway"]
    assert deps("backend") == ["pgbouncer", "redis"]
    assert deps("pgbouncer") == ["postgres-main"]
    assert deps("ai-gateway") == AI_SERVICES
    assert all(deps(name) == ["postgres-ai"] for name in AI_SERVICES)
    assert deps("grafana") == ["prometheus"]


def test_seed_platform_has_three_environments_and_references_for_every_password() -> None:
    inventory = load(SEED)

    assert list(inventory.environments) == ["production", "staging", "development"]
    assert inventory.environments["development"].host == "127.0.0.1"
    assert inventory.environments["staging"].host
    passwords = [inventory.databases[name].password for name in inventory.databases]
    passwords.append(inventory.caches["redis"].password)
    assert passwords == ["env:POSTGRES_PASSWORD", "env:POSTGRES_AI_PASSWORD", "env:REDIS_PASSWORD"]
    assert all(isinstance(password, SecretRef) for password in passwords)


def test_every_seed_component_names_its_team_and_runbook() -> None:
    inventory = load(SEED)

    for _, name, component in inventory.components():
        assert component.team, name
        assert component.runbook and not component.runbook.startswith("/"), name


# --- secrets, durations, percentages ------------------------------------------------------


def inventory_with_password(reference: str) -> str:
    return f"platform: {{name: shop}}\ndatabases:\n  main:\n    password: {reference}\n"


def test_secret_stays_a_reference_until_resolved_from_the_given_environment() -> None:
    password = loads(inventory_with_password("env:DB_PASSWORD")).databases["main"].password

    assert isinstance(password, SecretRef) and password == "env:DB_PASSWORD"
    assert password.resolve({"DB_PASSWORD": "s3cret"}) == "s3cret"


def test_secret_reference_is_what_a_dump_of_the_inventory_shows() -> None:
    inventory = loads(inventory_with_password("env:DB_PASSWORD"))

    assert inventory.model_dump(mode="json")["databases"]["main"]["password"] == "env:DB_PASSWORD"


def test_missing_environment_variable_is_an_error_naming_it() -> None:
    password = loads(inventory_with_password("env:DB_PASSWORD")).databases["main"].password
    assert isinstance(password, SecretRef)

    with pytest.raises(SecretError) as caught:
        password.resolve({})

    assert str(caught.value) == (
        "secret env:DB_PASSWORD is not set: export DB_PASSWORD in the environment"
    )


def test_file_secret_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    secret_file = tmp_path / "db-password"
    secret_file.write_text("s3cret\n")
    password = loads(inventory_with_password(f"file:{secret_file}")).databases["main"].password

    assert isinstance(password, SecretRef) and password.resolve() == "s3cret"


def test_unreadable_file_secret_is_an_error_naming_the_reference(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    password = loads(inventory_with_password(f"file:{missing}")).databases["main"].password
    assert isinstance(password, SecretRef)

    with pytest.raises(SecretError, match=re.escape(f"secret file:{missing} cannot be read")):
        password.resolve()


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("500ms", 0.5), ("10s", 10.0), ("5m", 300.0), ("1h", 3600.0), ("7d", 604800.0),
     ("1.5s", 1.5), ("45", 45.0), ("1h30m", 5400.0), ("1m30s500ms", 90.5)],
)
def test_durations_are_read_as_seconds(written: str, seconds: float) -> None:
    inventory = loads(f"platform: {{name: shop}}\ndefaults: {{interval: {written}}}\n")

    assert inventory.defaults.interval == seconds


@pytest.mark.parametrize("written", ["30m1h", "1m1m", "1h 30m", "5x"])
def test_compound_durations_go_from_the_largest_unit_down_once_each(written: str) -> None:
    with pytest.raises(ConfigError, match="expected a duration such as 10s"):
        loads(f"platform: {{name: shop}}\ndefaults: {{interval: '{written}'}}\n")


@pytest.mark.parametrize(("written", "ratio"), [("80%", 0.8), ("0.8", 0.8), ("80", 0.8),
                                                ("0%", 0.0), ("100%", 1.0), ("1", 1.0)])
def test_percentages_are_read_as_fractions(written: str, ratio: float) -> None:
    inventory = loads(
        "platform: {name: shop}\n"
        f"hosts: {{app: {{checks: [{{type: host, disk_warning: {written}}}]}}}}\n"
    )

    check = inventory.hosts["app"].checks[0]
    assert isinstance(check, HostCheck)
    assert check.disk_warning == pytest.approx(ratio)


def test_omitted_fields_take_their_documented_defaults() -> None:
    inventory = load(MINIMAL)

    backend = inventory.services["backend"]
    check = backend.checks[0]
    assert list(inventory.environments) == ["production"]
    assert (inventory.defaults.interval, inventory.defaults.timeout) == (30.0, 5.0)
    assert backend.kind == "api" and backend.criticality == Criticality.CRITICAL
    assert isinstance(check, HttpCheck) and check.scheme == "http" and check.verify_tls


# --- `opsplane config` --------------------------------------------------------------------


def run_opsplane(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line (main() maps errors to exit codes), without needing it installed."""
    return subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sys.executable, "-m", "opsplane", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )


@pytest.mark.slow
def test_validate_accepts_the_seed_example_with_a_one_line_summary() -> None:
    result = run_opsplane("config", "validate", "examples/seed-platform.yaml")

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "examples/seed-platform.yaml: valid: platform ecommerce, 12 services, 2 databases, "
        "1 cache, 1 proxy, 1 host, 19 checks; environments production, staging, development "
        "(default production)\n"
    )


@pytest.mark.slow
def test_validate_takes_the_file_from_the_global_config_option() -> None:
    result = run_opsplane("--config", "examples/minimal.yaml", "config", "validate")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("examples/minimal.yaml: valid: platform shop, 1 service, ")


@pytest.mark.slow
def test_validate_reports_an_invalid_file_with_exit_code_3(tmp_path: Path) -> None:
    bad = tmp_path / "opsplane.yaml"
    bad.write_text("platform: {name: shop}\nservices:\n  api:\n    port: 0\n")

    result = run_opsplane("config", "validate", str(bad))

    assert result.returncode == 3
    assert result.stdout == ""
    assert " ".join(result.stderr.split()) == (
        f"error: 1 problem in configuration: {bad}:4:11: services.api.port: "
        "expected a port number from 1 to 65535, got 0"
    )


@pytest.mark.slow
def test_schema_command_prints_the_json_schema() -> None:
    result = run_opsplane("config", "schema")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json_schema()


runner = CliRunner()


def test_validate_json_describes_a_valid_inventory() -> None:
    result = runner.invoke(config_app, ["validate", str(MINIMAL), "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "valid": True,
        "file": str(MINIMAL),
        "platform": "shop",
        "components": {"services": 1, "databases": 0, "caches": 0, "proxies": 0, "hosts": 0},
        "checks": 1,
        "environments": ["production"],
        "default_environment": "production",
        "warnings": [],
    }


def test_validate_json_lists_located_problems_and_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "opsplane.yaml"
    bad.write_text("platform: {name: shop}\nservices:\n  api:\n    port: 0\n    prot: 1\n")

    result = runner.invoke(config_app, ["validate", str(bad), "--json"])

    assert result.exit_code == 3
    assert json.loads(result.stdout) == {
        "valid": False,
        "file": str(bad),
        "problems": [
            {"file": str(bad), "line": 4, "column": 11, "field": "services.api.port",
             "message": "expected a port number from 1 to 65535, got 0"},
            {"file": str(bad), "line": 5, "column": 5, "field": "services.api.prot",
             "message": "unknown field 'prot'; did you mean 'port'?"},
        ],
    }


def test_validate_json_never_shows_a_literal_secret(tmp_path: Path) -> None:
    bad = tmp_path / "opsplane.yaml"
    bad.write_text(inventory_with_password("hunter2-Tr0ub4dor"))

    result = runner.invoke(config_app, ["validate", str(bad), "--json"])

    assert result.exit_code == 3
    assert "hunter2" not in result.stdout


def test_validate_json_reports_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(config_app, ["validate", str(tmp_path / "absent.yaml"), "--json"])

    assert result.exit_code == 3
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["message"] == f"no such file in {tmp_path}"


def test_schema_output_option_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "opsplane.schema.json"

    result = runner.invoke(config_app, ["schema", "--output", str(target)])

    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text()) == json_schema()


# --- the JSON Schema ----------------------------------------------------------------------


def test_json_schema_identifies_itself_for_editors() -> None:
    schema = json_schema()

    assert schema["$schema"] == SCHEMA_DRAFT == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]
    assert schema["title"] == "opsplane.yaml"
    assert schema["required"] == ["platform"]
    assert schema["additionalProperties"] is False


def test_json_schema_knows_every_check_type_and_refuses_literal_secrets() -> None:
    schema = json_schema()

    checks = schema["$defs"]["Service"]["properties"]["checks"]["items"]
    assert sorted(checks["discriminator"]["mapping"]) == sorted(CHECK_TYPES)
    password = schema["$defs"]["Database"]["properties"]["password"]["anyOf"][0]
    assert re.match(password["pattern"], "env:DB_PASSWORD")
    assert not re.match(password["pattern"], "hunter2")


def test_json_schema_refuses_component_names_the_loader_refuses() -> None:
    services = json_schema()["properties"]["services"]

    assert services["additionalProperties"] is False
    (pattern,) = services["patternProperties"]
    assert re.match(pattern, "ai-gateway") and not re.match(pattern, "AI Gateway")


@pytest.mark.parametrize("path", [SEED, MINIMAL], ids=lambda p: p.name)
def test_json_schema_accepts_the_examples(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    jsonschema.Draft202012Validator(json_schema()).validate(yaml.safe_load(path.read_text()))


def test_a_cycle_at_the_end_of_a_long_chain_is_found_without_recursion() -> None:
    depth = 3000
    lines = ["platform: {name: deep}", "services:"]
    lines += [f"  s{i}: {{depends_on: [s{i + 1}]}}" for i in range(depth - 1)]
    lines += [f"  s{depth - 1}: {{depends_on: [s{depth - 2}]}}"]
    with pytest.raises(ConfigError) as raised:
        loads("\n".join(lines), "opsplane.yaml")
    assert f"dependency cycle: s{depth - 2} -> s{depth - 1} -> s{depth - 2}" in str(raised.value)


def test_a_rule_the_promql_engine_refuses_is_a_located_config_error() -> None:
    text = ("platform: {name: shop}\n"
            "services: {orders: {}}\n"
            "alerting:\n"
            "  rules:\n"
            "    - {name: Slow, expr: 'max_over_time(up[5m:1m]) > 1', severity: P2}\n"
            "    - {name: Down, expr: 'up == 0', severity: P0, labels: {service: ordres}}\n")
    with pytest.raises(ConfigError) as raised:
        loads(text, "opsplane.yaml")
    shown = str(raised.value)
    assert "opsplane.yaml:5:26: alerting.rules[0].expr: rule Slow: subqueries are not supported" in shown
    assert "alerting.rules[1].labels.service: unknown component 'ordres'" in shown
