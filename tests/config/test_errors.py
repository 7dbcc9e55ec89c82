"""Every kind of mistake in opsplane.yaml gets one problem: the right place and a message a
person can act on. The table is the specification of those messages (INV-3)."""

from __future__ import annotations

import pytest

from opsplane.config.loader import loads
from opsplane.errors import ConfigError

FILE = "opsplane.yaml"
SECRET = "hunter2-Tr0ub4dor"


def doc(*lines: str) -> str:
    """YAML text from its lines, so that line numbers in the table can be read off."""
    return "\n".join(lines) + "\n"


def problems_in(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        loads(text, FILE)
    return [str(problem) for problem in caught.value.problems]


PLATFORM = "platform: {name: shop}"

CASES = [
    pytest.param(
        doc("platform: {name: shop"),
        "opsplane.yaml:2:1: invalid YAML: expected ',' or '}', but got '<stream end>' "
        "while parsing a flow mapping that starts at line 1, column 11",
        id="yaml-syntax-unclosed-brace",
    ),
    pytest.param(
        doc("platform:", "  name: shop", " services: {}"),
        "opsplane.yaml:3:2: invalid YAML: expected <block end>, but found "
        "'<block mapping start>' while parsing a block mapping that starts at line 1, column 1; "
        "check the indentation",
        id="yaml-syntax-indentation",
    ),
    pytest.param(
        doc("platform:", "\tname: shop"),
        "opsplane.yaml:2:1: invalid YAML: found character '\\t' that cannot start any token; "
        "indent with spaces, YAML does not allow tabs",
        id="yaml-syntax-tab",
    ),
    pytest.param(
        doc("platform:", "  name: shop", "platform:", "  name: other"),
        "opsplane.yaml:3:1: platform: duplicate key (first defined at line 1)",
        id="duplicate-key",
    ),
    pytest.param(
        doc("- platform", "- services"),
        "opsplane.yaml:1:1: expected a mapping at the top of the file",
        id="top-level-list",
    ),
    pytest.param(
        "",
        "opsplane.yaml:1:1: platform: required field is missing",
        id="empty-file",
    ),
    pytest.param(
        doc("services: {}"),
        "opsplane.yaml:1:1: platform: required field is missing",
        id="missing-platform",
    ),
    pytest.param(
        doc("platform:", "  default_environment: production"),
        "opsplane.yaml:2:3: platform.name: required field is missing",
        id="missing-platform-name",
    ),
    pytest.param(
        doc(PLATFORM, "service:", "  api: {}"),
        "opsplane.yaml:2:1: service: unknown field 'service'; did you mean 'services'?",
        id="unknown-top-level-field",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    prot: 8000"),
        "opsplane.yaml:4:5: services.api.prot: unknown field 'prot'; did you mean 'port'?",
        id="unknown-component-field",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    checks:", "      - type: http",
            "        pth: /health"),
        "opsplane.yaml:6:9: services.api.checks[0].pth: unknown field 'pth'; did you mean 'path'?",
        id="unknown-check-field",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    criticality: low"),
        "opsplane.yaml:4:18: services.api.criticality: expected 'critical', 'high' or 'medium', "
        "got 'low'",
        id="wrong-criticality",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    kind: database"),
        "opsplane.yaml:4:11: services.api.kind: expected 'gateway', 'api', 'web', 'worker', "
        "'frontend', 'monitoring' or 'other', got 'database'",
        id="wrong-service-kind",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    port: 0"),
        "opsplane.yaml:4:11: services.api.port: expected a port number from 1 to 65535, got 0",
        id="port-zero",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    port: 70000"),
        "opsplane.yaml:4:11: services.api.port: expected a port number from 1 to 65535, got 70000",
        id="port-too-high",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    port: abc"),
        "opsplane.yaml:4:11: services.api.port: expected a port number from 1 to 65535, got 'abc'",
        id="port-not-a-number",
    ),
    pytest.param(
        doc(PLATFORM, "defaults:", "  interval: 10 seconds"),
        "opsplane.yaml:3:13: defaults.interval: expected a duration such as 10s, 500ms or 5m, "
        "got '10 seconds'",
        id="bad-duration",
    ),
    pytest.param(
        doc(PLATFORM, "defaults:", "  timeout: -5s"),
        "opsplane.yaml:3:12: defaults.timeout: expected a positive duration, got '-5s'",
        id="negative-duration",
    ),
    pytest.param(
        doc(PLATFORM, "hosts:", "  app:", "    checks:", "      - type: host",
            "        disk_warning: 150%"),
        "opsplane.yaml:6:23: hosts.app.checks[0].disk_warning: expected a percentage between "
        "0% and 100%, got '150%'",
        id="percentage-above-100",
    ),
    pytest.param(
        doc(PLATFORM, "databases:", "  main:", f"    password: {SECRET}"),
        "opsplane.yaml:4:15: databases.main.password: a literal secret where a secret reference is "
        "expected: use a secret reference: env:NAME or file:PATH (secrets are never written in the "
        "configuration file)",
        id="literal-secret",
    ),
    pytest.param(
        doc(PLATFORM, "databases:", "  main:", "    password: file:secrets/db"),
        "opsplane.yaml:4:15: databases.main.password: a file: secret reference needs an "
        "absolute path, such as file:/run/secrets/db-password",
        id="secret-relative-file",
    ),
    pytest.param(
        doc(PLATFORM, "caches:", "  redis:", "    password: env:REDIS-PASSWORD"),
        "opsplane.yaml:4:15: caches.redis.password: an env: secret reference needs a variable "
        "name (letters, digits and _), such as env:DB_PASSWORD",
        id="secret-bad-variable-name",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    checks:", "      - type: htp"),
        "opsplane.yaml:5:15: services.api.checks[0].type: unknown check type 'htp'; expected one "
        "of http, tcp, postgres, redis, tls, command, host, pgbouncer; did you mean 'http'?",
        id="unknown-check-type",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    checks:", "      - path: /health"),
        "opsplane.yaml:5:9: services.api.checks[0]: a check needs a 'type': one of http, tcp, "
        "postgres, redis, tls, command, host, pgbouncer",
        id="check-without-type",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    checks:", "      - type: command",
            "        argv: []"),
        "opsplane.yaml:6:15: services.api.checks[0].argv: expected at least one item",
        id="command-empty-argv",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    checks:", "      - type: http",
            "        json: {path: status, op: '=~', value: ok}"),
        "opsplane.yaml:6:34: services.api.checks[0].json.op: expected '==', '!=', '<', '<=', "
        "'>', '>=' or 'in', got '=~'",
        id="json-op-invalid",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    depends_on: [postgress]", "databases:",
            "  postgres: {}"),
        "opsplane.yaml:4:18: services.api.depends_on[0]: unknown component 'postgress'; "
        "did you mean 'postgres'?",
        id="depends-on-unknown",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    depends_on: [api]"),
        "opsplane.yaml:4:18: services.api.depends_on[0]: a component cannot depend on itself",
        id="self-dependency",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  a:", "    depends_on: [b]", "  b:", "    depends_on: [c]",
            "  c:", "    depends_on: [a]"),
        "opsplane.yaml:8:17: services.c.depends_on: dependency cycle: a -> b -> c -> a",
        id="dependency-cycle",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  redis: {}", "caches:", "  redis: {}"),
        "opsplane.yaml:5:3: caches.redis: name 'redis' is already used by services.redis; "
        "a name must be unique across services, databases, caches, proxies and hosts",
        id="duplicate-name-across-sections",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    environments:", "      prod: {port: 8001}"),
        "opsplane.yaml:5:7: services.api.environments.prod: unknown environment 'prod'; "
        "expected one of production",
        id="unknown-environment-override",
    ),
    pytest.param(
        doc("platform:", "  name: shop", "  default_environment: prod", "environments:",
            "  production: {}", "  staging: {}"),
        "opsplane.yaml:3:24: platform.default_environment: unknown environment 'prod'; "
        "expected one of production, staging",
        id="unknown-default-environment",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    checks:", "      - type: tcp",
            "      - type: tcp"),
        "opsplane.yaml:6:9: services.api.checks[1].name: check name 'tcp' is already used by "
        "checks[0]; give each check of the same type a distinct name",
        id="duplicate-check-name",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  Backend: {}"),
        "opsplane.yaml:3:3: services.Backend: invalid name 'Backend': use lowercase letters, "
        "digits, '-', '_' and '.', starting with a lowercase letter or digit",
        id="component-name-uppercase",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  ai gateway: {}"),
        "opsplane.yaml:3:3: services.ai gateway: invalid name 'ai gateway': use lowercase "
        "letters, digits, '-', '_' and '.', starting with a lowercase letter or digit",
        id="component-name-with-space",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  - api", "  - search"),
        "opsplane.yaml:3:3: services: expected a mapping, got a list",
        id="list-where-mapping-expected",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:"),
        "opsplane.yaml:3:7: services.api: expected a mapping, got nothing (null)",
        id="empty-component",
    ),
    pytest.param(
        doc(PLATFORM, "services:", "  api:", "    depends_on: postgres"),
        "opsplane.yaml:4:17: services.api.depends_on: expected a list, got 'postgres'",
        id="text-where-list-expected",
    ),
    pytest.param(
        doc("version: 2", PLATFORM),
        "opsplane.yaml:1:10: version: expected 1, got 2",
        id="unsupported-version",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_each_mistake_is_reported_once_with_its_place_and_what_was_expected(
    text: str, expected: str
) -> None:
    assert problems_in(text) == [expected]


def test_field_problems_are_reported_together_in_file_order_before_cross_checks() -> None:
    text = doc(
        "platform: {name: shop}",
        "services:",
        "  api:",
        "    port: 0",
        "    criticality: low",
        "    depends_on: [nothing]",
    )

    assert problems_in(text) == [
        "opsplane.yaml:4:11: services.api.port: expected a port number from 1 to 65535, got 0",
        "opsplane.yaml:5:18: services.api.criticality: expected 'critical', 'high' or 'medium', "
        "got 'low'",
    ]  # cross-checks (here depends_on) run once every field is valid


def test_error_lists_the_problems_under_a_count() -> None:
    with pytest.raises(ConfigError) as caught:
        loads(doc(PLATFORM, "services:", "  api:", "    port: 0", "    prot: 1"), FILE)

    assert str(caught.value) == (
        "2 problems in configuration:\n"
        "  opsplane.yaml:4:11: services.api.port: expected a port number from 1 to 65535, got 0\n"
        "  opsplane.yaml:5:5: services.api.prot: unknown field 'prot'; did you mean 'port'?"
    )
    assert caught.value.exit_code == 3


@pytest.mark.parametrize(
    "line",
    [
        f"databases: {{main: {{password: {SECRET}}}}}",
        f"databases: {{main: {{password: 'env {SECRET}'}}}}",
        f"caches: {{redis: {{password: {SECRET}}}}}",
        f"services: {{api: {{checks: [{{type: http, bearer_token: {SECRET}}}]}}}}",
        f"services: {{api: {{checks: [{{type: http, bearer_token: [{SECRET}]}}]}}}}",
    ],
    ids=["database", "database-with-space", "cache", "bearer-token", "bearer-token-list"],
)
def test_a_literal_secret_never_appears_in_the_error(line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        loads(doc(PLATFORM, line), FILE)

    assert SECRET not in str(caught.value)
    assert all(SECRET not in problem.message for problem in caught.value.problems)
    assert caught.value.__cause__ is None  # pydantic's error, which quotes the input, is dropped
