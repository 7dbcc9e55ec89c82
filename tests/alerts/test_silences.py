"""Silences: which alerts they mute and when, how they are stored and expired, and the
`opsplane silence` commands with their audit events."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsplane.alerts import service
from opsplane.alerts.cli import silence_app
from opsplane.alerts.silences import SilenceState, silenced_by
from opsplane.errors import UsageError
from opsplane.events import service as events
from opsplane.store import Store
from tests.alerts.factories import T0

HOUR = timedelta(hours=1)
ORDERS_DOWN = {"alertname": "ServiceDown", "service": "orders", "severity": "P0"}


def _add(store: Store, *matchers: str, start: timedelta = timedelta(0), length: timedelta = HOUR):
    with store.session() as session:
        return service.create_silence(
            session, matchers=list(matchers), author="ana", comment="orders deploy",
            starts_at=T0 + start, ends_at=T0 + start + length, now=T0, actor="cli:ana",
        )


def test_a_silence_mutes_matching_alerts_only_between_its_start_and_end(store: Store) -> None:
    silence = _add(store, 'service="orders"', start=timedelta(minutes=10))
    assert silence.state(T0) is SilenceState.PENDING and not silence.mutes(ORDERS_DOWN, T0)
    during = T0 + timedelta(minutes=10)
    assert silence.mutes(ORDERS_DOWN, during)
    assert not silence.mutes({**ORDERS_DOWN, "service": "payments"}, during)
    assert silence.state(during + HOUR) is SilenceState.EXPIRED
    assert not silence.mutes(ORDERS_DOWN, during + HOUR)


@pytest.mark.parametrize(
    ("matchers", "muted"),
    [
        (['service="orders"'], True),
        (['service!="payments"', 'alertname="ServiceDown"'], True),
        (['service=~"orders|payments"'], True),
        (['service=~"order"'], False),
        (['service!~"ord.*"', 'severity="P0"'], False),
        (['alertname="ServiceDown"', 'env="staging"'], False),
    ],
)
def test_every_matcher_of_a_silence_must_match(store: Store, matchers: list[str], muted: bool) -> None:
    silence = _add(store, *matchers)
    assert silenced_by([silence], ORDERS_DOWN, T0) == ([silence.id] if muted else [])


@pytest.mark.parametrize(
    ("matchers", "problem"),
    [
        ([], "at least one matcher"),
        (['team!="payments"'], "would mute everything"),
        (['service=~".*"'], "would mute everything"),
        (["service is orders"], "cannot read matcher"),
    ],
)
def test_silences_that_would_mute_everything_or_cannot_be_read_are_refused(
    store: Store, matchers: list[str], problem: str
) -> None:
    with pytest.raises(UsageError, match=problem):
        _add(store, *matchers)


def test_a_silence_that_is_already_over_is_refused(store: Store) -> None:
    with pytest.raises(UsageError, match="already be over"):
        _add(store, 'service="orders"', start=-2 * HOUR)


def test_silences_survive_reopening_and_expiring_ends_them_now(store: Store) -> None:
    first = _add(store, 'service="orders"')
    second = _add(store, 'service="payments"', start=HOUR)
    later = T0 + timedelta(minutes=5)
    reopened = Store(store.engine)
    with reopened.session() as session:
        assert [s.id for s in service.get_silences(session, now=later)] == [first.id, second.id]
        ended = service.expire_silence(session, silence_id=second.id, now=later, actor="cli:ana")
    assert ended.ends_at == later and ended.state(later) is SilenceState.EXPIRED
    with store.session() as session:
        assert [s.id for s in service.get_silences(session, now=later)] == [first.id]
        every = service.get_silences(session, now=later, include_expired=True)
        assert [s.id for s in every] == [first.id, second.id]
        with pytest.raises(UsageError, match="already ended"):
            service.expire_silence(session, silence_id=second.id, now=later, actor="cli:ana")
        with pytest.raises(UsageError, match="no silence 999"):
            service.expire_silence(session, silence_id=999, now=later, actor="cli:ana")


def test_creating_and_expiring_are_recorded_with_who_did_it(store: Store) -> None:
    silence = _add(store, 'service="orders"')
    with store.session() as session:
        service.expire_silence(session, silence_id=silence.id, now=T0 + HOUR / 2, actor="cli:bo")
        found = [e.as_dict() for e in events.get_all(session, kind="silence.*")]
    assert [(e["kind"], e["actor"], e["target"]) for e in found] == [
        ("silence.expired", "cli:bo", f"silence/{silence.id}"),
        ("silence.created", "cli:ana", f"silence/{silence.id}"),
    ]
    assert found[1]["details"]["matchers"] == ['service="orders"']
    assert found[1]["details"]["comment"] == "orders deploy"


@pytest.fixture
def database_env(tmp_path: Path) -> dict[str, str]:
    return {"OPSPLANE_DATABASE_URL": f"sqlite:///{tmp_path}/opsplane.db"}


def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(silence_app, list(args), env=env)
    return result.exit_code, result.output


def test_silence_commands_add_list_and_expire(database_env: dict[str, str]) -> None:
    code, shown = _cli(database_env, "add", 'service="orders"', 'severity=~"P2|P3"', "-m", "deploy",
                       "--duration", "2h", "--author", "ana", "--json")
    assert code == 0, shown
    added = json.loads(shown)
    assert added["matchers"] == ['service="orders"', 'severity=~"P2|P3"'] and added["author"] == "ana"
    code, shown = _cli(database_env, "list", "--json")
    (listed,) = json.loads(shown)
    assert listed["id"] == added["id"] and listed["state"] == "active"
    code, shown = _cli(database_env, "expire", str(added["id"]))
    assert code == 0 and f"Silence {added['id']} expired" in shown
    assert json.loads(_cli(database_env, "list", "--json")[1]) == []
    (expired,) = json.loads(_cli(database_env, "list", "--all", "--json")[1])
    assert expired["state"] == "expired"


def test_silence_add_refuses_bad_input_with_a_usage_error(database_env: dict[str, str]) -> None:
    result = CliRunner().invoke(silence_app, ["add", 'team!="x"', "-m", "x"], env=database_env)
    assert isinstance(result.exception, UsageError) and result.exception.exit_code == 3
    result = CliRunner().invoke(silence_app, ["add", 'service="orders"', "-m", "x", "-d", "soon"],
                                env=database_env)
    assert isinstance(result.exception, UsageError) and "--duration" in str(result.exception)


def test_opsplane_mounts_the_silence_commands(database_env: dict[str, str], tmp_path: Path) -> None:
    import os

    env = {**os.environ, **database_env}
    done = subprocess.run([sys.executable, "-m", "opsplane", "silence", "add", "-m", "x", "team!=x"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 3 and "would mute everything" in done.stderr
