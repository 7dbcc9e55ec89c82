"""The inventory's `run` and `runtime` sections, and what the supervisor is told from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsplane.config.loader import loads
from opsplane.drivers.runtime.spec import ServiceSpec, substitute
from opsplane.errors import ConfigError

BASE = "platform: {name: shop}\nservices:\n"


def test_run_defaults_follow_the_documented_policy() -> None:
    inventory = loads(BASE + "  api:\n    port: 8000\n    run: {argv: [python, app.py]}\n", "x.yaml")

    run = inventory.services["api"].run
    assert run is not None and run.argv == ["python", "app.py"]
    assert (run.instances, run.restart, run.stop_timeout) == (1, "on-failure", 10.0)
    backoff = run.backoff
    assert (backoff.initial, backoff.factor, backoff.max, backoff.reset_after) == (1, 2, 60, 30)
    assert run.max_restarts is None and run.restart_window == 600
    logs = run.logs
    assert (logs.max_bytes, logs.daily, logs.backups, logs.retention) == (10 * 1024 * 1024, True, 30, None)
    assert inventory.runtime.driver == "process" and inventory.runtime.state_dir == ".opsplane/run"


def test_problems_in_a_run_section_are_reported_where_they_are() -> None:
    text = BASE + (
        "  api:\n"
        "    run:\n"
        "      argv: []\n"
        "      env: {9LIVES: x, MODE: live}\n"
        "      secret_env: {MODE: env:MODE, DB_PASSWORD: hunter2}\n"
        "      restart: sometimes\n"
        "      instances: 0\n"
        "runtime: {driver: docker}\n"
    )

    with pytest.raises(ConfigError) as raised:
        loads(text, "x.yaml")

    messages = {(p.line, p.field): p.message for p in raised.value.problems}
    assert messages[(5, "services.api.run.argv")] == "expected at least one item"
    assert "invalid environment variable name '9LIVES'" in messages[(6, "services.api.run.env.9LIVES")]
    assert messages[(7, "services.api.run.secret_env.DB_PASSWORD")].startswith(
        "a literal secret where a secret reference is expected")
    assert "hunter2" not in str(raised.value)
    assert messages[(8, "services.api.run.restart")] == \
        "expected 'always', 'on-failure' or 'never', got 'sometimes'"
    assert messages[(9, "services.api.run.instances")].startswith("expected a value greater than or equal")
    assert messages[(10, "runtime.driver")] == "expected 'process', got 'docker'"


def test_a_variable_in_both_env_and_secret_env_is_refused() -> None:
    text = BASE + "  api:\n    run: {argv: [app], env: {TOKEN: x}, secret_env: {TOKEN: env:TOKEN}}\n"

    with pytest.raises(ConfigError, match="TOKEN is set in both env and secret_env"):
        loads(text, "x.yaml")


def test_the_spec_resolves_paths_ports_and_policy(tmp_path: Path) -> None:
    inventory = loads(BASE + (
        "  api:\n    port: 8000\n    host: 127.0.0.2\n"
        "    run: {argv: [app], cwd: srv, restart: always, backoff: {initial: 500ms, max: 5s},\n"
        "          max_restarts: 4, restart_window: 2m, secret_env: {TOKEN: 'file:/run/secrets/t'}}\n"
        "  worker:\n    run: {argv: [work]}\n"
        "  queue:\n    run: {argv: [q, --listen, '{port}']}\n"
    ), "x.yaml")

    api = ServiceSpec.from_component("api", inventory.component("api"), base_dir=tmp_path)
    worker = ServiceSpec.from_component("worker", inventory.component("worker"), base_dir=tmp_path)
    queue = ServiceSpec.from_component("queue", inventory.component("queue"), base_dir=tmp_path)

    assert api.cwd == str(tmp_path / "srv") and worker.cwd == str(tmp_path)
    assert (api.host, api.port, api.wants_port) == ("127.0.0.2", 8000, True)
    assert (worker.host, worker.port, worker.wants_port) == ("127.0.0.1", None, False)
    assert (queue.port, queue.wants_port) == (None, True)
    assert (api.policy.mode, api.policy.initial, api.policy.max_delay, api.policy.max_restarts,
            api.policy.window) == ("always", 0.5, 5.0, 4, 120.0)
    assert api.secret_env == {"TOKEN": "file:/run/secrets/t"}
    assert ServiceSpec.from_dict(api.as_dict()) == api


def test_placeholders_are_replaced_and_other_braces_kept() -> None:
    text = '--bind={host}:{port} --name={service}-{instance} --format={"level": "{levelname}"}'

    assert substitute(text, port=8101, host="127.0.0.1", instance=2, service="catalog") == \
        '--bind=127.0.0.1:8101 --name=catalog-2 --format={"level": "{levelname}"}'


def test_specs_differing_only_in_instance_count_run_the_same_program(tmp_path: Path) -> None:
    one = loads(BASE + "  api:\n    run: {argv: [app]}\n", "x.yaml")
    three = loads(BASE + "  api:\n    run: {argv: [app], instances: 3}\n", "x.yaml")
    other = loads(BASE + "  api:\n    run: {argv: [app, --debug]}\n", "x.yaml")
    spec = lambda inv: ServiceSpec.from_component("api", inv.component("api"), base_dir=tmp_path)  # noqa: E731

    assert spec(one).same_program(spec(three))
    assert not spec(one).same_program(spec(other))


def test_the_public_surface_of_the_runtime_drivers() -> None:
    import opsplane.drivers.runtime as runtime

    assert sorted(runtime.__all__) == ["InstanceState", "InstanceStatus", "LogLine", "RuntimeDriver",
                                       "RuntimeFailure", "RuntimeNotRunning", "RuntimeNotice",
                                       "RuntimeWatch", "open_runtime", "watched_runtime"]


def test_the_runtime_example_is_a_valid_inventory_with_two_runnable_services() -> None:
    from opsplane.config.loader import load
    from opsplane.runtime.selection import runnable

    inventory = load(Path(__file__).resolve().parents[2] / "examples" / "local-processes.yaml")

    assert list(runnable(inventory)) == ["gateway", "catalog"]
    assert inventory.component("catalog").run.uses_port()  # type: ignore[union-attr]
