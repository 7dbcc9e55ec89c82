"""Real runs of shipped runbooks that need no whole shop: each driven by opsplane's runner
against real parts (the machine's own host check, `df`, `du` and `ps`, a tiny service run by
opsplane's runtime and scraped by opsplane's scraper as `serve` scrapes it, each instance on its
own behind a proxy, a PostgreSQL primary with a streaming standby behind PgBouncer), a person's
answers given by step, approvals by a second person, time on a clock the test moves so that no
wait takes real time.

An instance that hangs is `up` 0 to its scrapes; one that the runtime no longer runs is not
scraped at all (its series go stale), so one-server-down is run against a hung instance.

Where the host check's thresholds are forced below what the machine shows so that it fails, it
stays failed after the fix (the file system, the memory and the CPU are the whole machine's,
shared with everything else on it): there the run's last wait is asserted to time out on the
clock, which is what the runbook does on such a machine.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from opsplane.alerts import service as alerts
from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.config.loader import load
from opsplane.drivers.sandbox.pgbouncer import Backend, TemporaryPgBouncer
from opsplane.drivers.sandbox.ports import free_port
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.metrics.scrape import MetricsScraper, scrape_targets
from opsplane.metrics.store import SampleStore
from opsplane.runbooks import runner, service
from opsplane.runbooks.flows import LivePlatform
from opsplane.runbooks.loader import catalog
from opsplane.runbooks.models import render, resolve_parameters
from opsplane.store import Store
from tests.runtime.platforms import Platform, running

START = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
TINY = Path(__file__).with_name("tiny_service.py")


class Person:
    """Answers each confirmation as told by step id (dashes as underscores), allows every unsafe
    step; a question not told is nobody answering."""

    actor = "cli:ana"

    def __init__(self, **confirms: bool) -> None:
        self.confirms = {k.replace("_", "-"): v for k, v in confirms.items()}
        self.asked: list[str] = []

    def confirm(self, run: Any, step: Any) -> bool | None:
        self.asked.append(step.id)
        return self.confirms.get(step.id)

    def allow(self, run: Any, step: Any, plan: str) -> str | None:
        self.asked.append(f"allow {step.id}")
        return "yes"

    def typed(self, run: Any, step: Any, word: str) -> bool | None:
        return None

    def happened(self, run: Any, step: Any, attempt: int) -> str | None:
        return None


@dataclass
class Rig:
    """An inventory in a directory, its store, opsplane's sample store, the clock of the runs."""

    base: Path
    store: Store
    env: dict[str, str]
    clock: ManualClock
    samples: SampleStore

    def write(self, text: str) -> Any:
        path = self.base / "opsplane.yaml"
        path.write_text(textwrap.dedent(text))
        return load(path)

    def scrape(self, inventory: Any) -> None:
        """One scrape of every component with metrics_path, as serve's scraper does it, now."""
        async def once() -> None:
            scraper = MetricsScraper(scrape_targets(inventory), clock=self.clock, store=self.samples)
            try:
                for target in scraper.targets:
                    await scraper.scrape(target)
            finally:
                await scraper.close()

        asyncio.run(once())

    def start(self, inventory: Any, name: str, person: Person, **given: str) -> int:
        loaded = catalog(inventory, self.base)[name]
        assert loaded.builtin
        values, problems = resolve_parameters(loaded.runbook, given)
        assert problems == []
        return runner.start(self.store, runbook=render(loaded.runbook, values), parameters=values,
                            requested_by=person.actor, mode="manual", clock=self.clock)

    def drive(self, inventory: Any, run_id: int, person: Person, on_sleep: Any = None) -> str:
        def sleep(seconds: float) -> None:
            self.clock.advance(seconds)
            if on_sleep is not None:
                on_sleep()

        platform = LivePlatform(inventory, base_dir=self.base, store=self.store, clock=self.clock,
                                environ=self.env, samples=lambda: self.samples)
        driver = runner.Runner(self.store, platform, clock=self.clock, actor=person.actor, person=person,
                               sleep=sleep)
        try:
            return driver.drive(run_id)
        finally:
            driver.close()

    def steps(self, run_id: int) -> dict[str, tuple[str, str]]:
        """Each step's last (outcome, output), in the order they ran."""
        with self.store.session() as session:
            return {row.step_id: (row.outcome or row.state, row.output or "")
                    for row in service.steps(session, run_id)}

    def approve(self, run_id: int, step_id: str, actor: str, role: Role = Role.OPERATOR) -> None:
        with self.store.session() as session:
            service.approve(session, service.get(session, run_id), step_id=step_id, actor=actor, role=role,
                            now=self.clock.now())


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    url = f"sqlite:///{tmp_path}/opsplane.db"
    store = Store.open(url)
    clock = ManualClock(START)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "OPSPLANE_DATABASE_URL": url}
    try:
        yield Rig(tmp_path, store, env, clock, SampleStore(clock=clock))
    finally:
        store.close()


@pytest.fixture
def runtime(rig: Rig) -> Iterator[Platform]:
    """opsplane's runtime over the rig's inventory; whatever it started is stopped after."""
    platform = Platform(rig.base, {**rig.env, "PATH": f"{Path(sys.executable).parent}:{rig.env['PATH']}"})
    try:
        yield platform
    finally:
        if platform.inventory_path.exists():
            platform.driver().down()


def tiny(name: str, port: int, *args: str) -> str:
    """A service of the inventory running tiny_service.py under the runtime, checked at /health and
    scraped at /metrics."""
    run = {"argv": [sys.executable, str(TINY), "{port}", *args], "stop_timeout": "1s",
           "backoff": {"initial": "200ms"}}
    return (f"  {name}:\n    port: {port}\n    metrics_path: /metrics\n"
            f"    checks: [{{type: http, path: /health}}]\n    run: {json.dumps(run)}\n")


def host(**thresholds: float) -> str:
    fields = "".join(f", {key}: {value}" for key, value in thresholds.items())
    return f"hosts:\n  localhost:\n    checks: [{{type: host{fields}}}]\n"


def pid_of(port: int) -> int:
    return int(httpx.get(f"http://127.0.0.1:{port}/health", trust_env=False).json()["pid"])


# --- disk-full ---------------------------------------------------------------------------


def test_disk_full_shows_the_big_file_silences_the_disk_alerts_and_waits_for_the_check(rig: Rig) -> None:
    scratch = rig.base / "scratch"
    (scratch / "logs").mkdir(parents=True)
    big = scratch / "logs" / "app.log.1"
    with big.open("wb") as out:  # written, not sparse: du counts its blocks
        for _ in range(24):
            out.write(b"\0" * (1 << 20))
    used = psutil.disk_usage(str(scratch)).percent / 100
    assert used > 0.02, "the thresholds below must be under this machine's disk usage"
    inventory = rig.write("platform: {name: shop}\n"
                          + host(path=str(scratch), disk_warning=0.01, disk_critical=0.02))
    person = Person(silence_ok=True)
    run_id = rig.start(inventory, "disk-full", person, path=str(scratch))

    looks: list[datetime] = []

    def free_space() -> None:  # the person frees the space while the run waits
        looks.append(rig.clock.now())
        big.unlink(missing_ok=True)

    state = rig.drive(inventory, run_id, person, free_space)
    steps = rig.steps(run_id)
    assert list(steps) == ["probe", "usage", "full", "filesystems", "biggest", "silence-ok", "silence",
                           "free", "freed"]
    assert steps["probe"][0] == "failed" and f"disk {scratch}" in steps["probe"][1]
    assert "(critical at 2%)" in steps["probe"][1]
    assert steps["full"] == ("ok", "probe was failed: on to filesystems")
    assert steps["filesystems"][0] == "ok" and "Use%" in steps["filesystems"][1]
    biggest = steps["biggest"]
    sizes = dict(reversed(line.split("\t")) for line in biggest[1].splitlines())
    assert biggest[0] == "ok" and sizes[f"{scratch}/logs"] in ("24M", "25M"), biggest[1]
    assert person.asked == ["silence-ok", "allow silence"]
    with rig.store.session() as session:
        (silence,) = alerts.get_silences(session, now=rig.clock.now())
    assert [str(m) for m in silence.matchers] == ['alertname=~"DiskSpaceLow|HighDiskUsage"']
    assert silence.author == "cli:ana" and f"run {run_id}" in silence.comment
    assert (silence.ends_at - silence.starts_at).total_seconds() == 3600
    assert steps["silence"][0] == "ok" and f"silence {silence.id} mutes" in steps["silence"][1]
    # the file is gone, but the file system is the machine's: still over 2 %, the wait gives up
    assert not big.exists()
    assert (state, steps["freed"][0]) == ("failed", "timed_out")
    assert (rig.clock.now() - START).total_seconds() == 1800 and len(looks) == 60


# --- high-cpu and high-memory ------------------------------------------------------------


@pytest.fixture
def burner() -> Iterator[subprocess.Popen[bytes]]:
    """A python loop that keeps one CPU busy."""
    process = subprocess.Popen([sys.executable, "-c", "import sys\nwhile True: pass", "burn-for-high-cpu"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_high_cpu_shows_the_busy_process_and_a_no_changes_nothing(rig: Rig, runtime: Platform,
                                                                  burner: subprocess.Popen[bytes]) -> None:
    port = free_port()
    inventory = rig.write("platform: {name: shop}\nservices:\n" + tiny("web", port)
                          + host(cpu_warning=0.05, cpu_critical=0.1))
    runtime.cli("up", "web")
    before = pid_of(port)
    person = Person(restart_ok=False)
    run_id = rig.start(inventory, "high-cpu", person, service="web")
    state = rig.drive(inventory, run_id, person)
    steps = rig.steps(run_id)
    assert state == "succeeded", steps
    assert list(steps) == ["probe", "cpu", "busy", "processes", "restart-ok", "scale-up"]
    assert steps["probe"][0] == "failed" and "cpu " in steps["probe"][1]
    assert steps["busy"] == ("ok", "probe was failed: on to processes")
    burning = [line.split() for line in steps["processes"][1].splitlines() if "burn-for-high-cpu" in line]
    assert [int(fields[0]) for fields in burning] == [burner.pid]
    assert float(burning[0][1]) > 20  # its share of a CPU, as ps sees it
    assert person.asked == ["restart-ok"] and steps["restart-ok"][0] == "no"
    assert pid_of(port) == before  # nothing was restarted


def test_high_memory_restarts_the_service_that_leaks(rig: Rig, runtime: Platform) -> None:
    port = free_port()
    leak = rig.base / "leak"
    leak.touch()
    inventory = rig.write("platform: {name: shop}\nservices:\n"
                          + tiny("web", port, "--leak-file", str(leak), "--leak-mb", "300")
                          + host(memory_warning=0.001, memory_critical=0.002))
    runtime.cli("up", "web")
    (leaking,) = running(runtime, "web", 1)
    assert not leak.exists() and psutil.Process(leaking.pid).memory_info().rss > 300 << 20
    person = Person(restart_ok=True)
    run_id = rig.start(inventory, "high-memory", person, service="web")
    state = rig.drive(inventory, run_id, person)
    steps = rig.steps(run_id)
    assert list(steps) == ["probe", "memory", "short", "processes", "restart-ok", "restart", "freed"]
    assert steps["probe"][0] == "failed" and "memory " in steps["probe"][1]
    shown = {int(fields[0]): int(fields[1]) for fields in
             (line.split() for line in steps["processes"][1].splitlines()[1:])}
    assert shown[leaking.pid] > 300 * 1024  # ps's rss, in KiB
    assert person.asked == ["restart-ok", "allow restart"]
    assert steps["restart"][0] == "ok" and f"pid {leaking.pid} -> " in steps["restart"][1]
    after = pid_of(port)
    assert after != leaking.pid and psutil.Process(after).memory_info().rss < 100 << 20
    # the machine's memory stays over the forced 0.2 %: the wait gives up after its 10 minutes
    assert (state, steps["freed"][0]) == ("failed", "timed_out")
    assert (rig.clock.now() - START).total_seconds() == 600


# --- security-incident -------------------------------------------------------------------


def test_security_incident_shows_refused_requests_and_restarts_with_an_operators_approval(
        rig: Rig, runtime: Platform) -> None:
    port = free_port()
    inventory = rig.write("platform: {name: shop}\nservices:\n" + tiny("web", port))
    runtime.cli("up", "web")
    before = pid_of(port)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
        rig.scrape(inventory)
        for _ in range(30):
            assert client.get("/login").status_code == 401
        for _ in range(15):
            assert client.get("/admin").status_code == 403
        rig.clock.advance(15)
        rig.scrape(inventory)
    person = Person(notify=True, evidence=True, credentials=True)
    run_id = rig.start(inventory, "security-incident", person, service="web", check="http")
    assert rig.drive(inventory, run_id, person) == "awaiting_approval"
    steps = rig.steps(run_id)
    assert list(steps) == ["traffic", "refused", "notify", "evidence", "isolate", "credentials"]
    refused = dict(line.rsplit(" ", 1) for line in steps["refused"][1].splitlines())
    assert set(refused) == {'{service="web", status="401"}', '{service="web", status="403"}'}, refused
    logins, scans = (float(refused[f'{{service="web", status="{code}"}}']) for code in (401, 403))
    assert logins == 2 * scans > 0  # 30 refused logins and 15 refused scans in the same 15 s
    assert 'service="web"' in steps["traffic"][1]
    assert person.asked == ["notify", "evidence", "credentials"]
    with pytest.raises(service.RunRefused, match="another person must approve"):
        rig.approve(run_id, "restart-approval", "token:ana", Role.ADMIN)
    with pytest.raises(service.NotAllowed, match="needs the operator role"):
        rig.approve(run_id, "restart-approval", "token:bob", Role.RESPONDER)
    rig.approve(run_id, "restart-approval", "token:bob")
    assert pid_of(port) == before  # nothing restarted before the approval
    assert rig.drive(inventory, run_id, person) == "succeeded"
    steps = rig.steps(run_id)
    assert list(steps)[6:] == ["restart-approval", "restart", "answers", "investigate"]
    assert steps["restart"][0] == "ok" and steps["answers"][0] == "ok"
    assert pid_of(port) != before
    with rig.store.session() as session:
        rows = {row.step_id: row for row in service.steps(session, run_id)}
    assert rows["restart-approval"].approved_by == "token:bob"
    assert rows["restart"].confirmed_by == "cli:ana"


def test_security_incident_without_the_security_team_told_is_aborted(rig: Rig) -> None:
    inventory = rig.write(f"platform: {{name: shop}}\nservices:\n  web: {{port: {free_port()}}}\n")
    person = Person(notify=False)
    run_id = rig.start(inventory, "security-incident", person, service="web", check="http")
    assert rig.drive(inventory, run_id, person) == "aborted"
    assert list(rig.steps(run_id)) == ["traffic", "refused", "notify"]


# --- database-failure-recovery -----------------------------------------------------------


@dataclass
class Pair:
    primary: TemporaryPostgres
    standby: TemporaryPostgres
    bouncer: TemporaryPgBouncer


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """A primary, its streaming standby, and PgBouncer's `shop` in front of the primary."""
    primary = TemporaryPostgres(tmp_path / "primary").start()
    standby = None
    try:
        standby = TemporaryPostgres.replica_of(primary, tmp_path / "standby").start()
        backends = {"shop": Backend(primary.host, primary.port)}
        with TemporaryPgBouncer(tmp_path / "bouncer", backends) as bouncer:
            yield Pair(primary, standby, bouncer)
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()


def test_database_failure_recovery_fails_over_to_the_standby_once_an_operator_approves(
        rig: Rig, pair: Pair) -> None:
    # orders answers when a query through PgBouncer does: its clients' way to the database
    client = [sys.executable, "-c", "import psycopg, sys; psycopg.connect(sys.argv[1], connect_timeout=2, "
              "prepare_threshold=None).execute('select 1')", pair.bouncer.url("shop")]
    inventory = rig.write(f"""\
        platform: {{name: shop}}
        services:
          orders:
            port: {free_port()}
            checks: [{{type: command, name: health, argv: {json.dumps(client)}}}]
        databases:
          postgres-main:
            host: 127.0.0.1
            port: {pair.primary.port}
            user: postgres
            checks: [{{type: postgres}}]
        backup:
          failover:
            postgres-main:
              standby: {{host: 127.0.0.1, port: {pair.standby.port}}}
              pgbouncer: {{host: 127.0.0.1, port: {pair.bouncer.port},
                          config_file: {pair.bouncer.config_file}, database: shop}}
              fence: {{how: stop, data_dir: {pair.primary.data_dir}}}
        """)
    primary = psutil.Process(pair.primary.pid)
    primary.kill()  # the primary crashes; its data directory stays, as on a real host
    primary.wait(10)
    person = Person()
    run_id = rig.start(inventory, "database-failure-recovery", person)
    assert rig.drive(inventory, run_id, person) == "awaiting_approval"
    steps = rig.steps(run_id)
    assert list(steps) == ["probe", "down", "blip", "outage", "declare"]
    assert steps["probe"][0] == "failed" and steps["down"] == ("ok", "probe was failed: on to blip")
    assert steps["blip"][0] == "timed_out" and steps["outage"] == ("ok", "blip was timed_out: on to declare")
    assert (rig.clock.now() - START).total_seconds() == 60
    with pytest.raises(service.RunRefused, match="another person must approve"):
        rig.approve(run_id, "failover-ok", "token:ana", Role.ADMIN)
    with pytest.raises(service.NotAllowed, match="needs the operator role"):
        rig.approve(run_id, "failover-ok", "token:bob", Role.RESPONDER)
    assert pair.standby.execute("select pg_is_in_recovery()")[0][0] is True  # nothing before the approval
    rig.approve(run_id, "failover-ok", "token:bob")

    assert rig.drive(inventory, run_id, person) == "succeeded", json.dumps(rig.steps(run_id), indent=1)
    steps = rig.steps(run_id)
    assert list(steps)[5:] == ["failover-ok", "failover", "services", "recovered"]
    failover = steps["failover"][1]
    assert steps["failover"][0] == "ok" and "promote: ok" in failover and "repoint: ok" in failover
    assert (f"change in the inventory: databases.postgres-main: host 127.0.0.1, port {pair.standby.port}"
            in failover)
    assert steps["services"][0] == "ok" and "restore" not in steps
    assert pair.standby.execute("select pg_is_in_recovery()")[0][0] is False
    with pair.bouncer.admin() as console:
        assert console.database("shop")["port"] == pair.standby.port
    assert person.asked == ["allow failover"]


# --- one-server-down ---------------------------------------------------------------------


def test_one_server_down_restarts_the_service_until_no_instance_is_down(rig: Rig, runtime: Platform) -> None:
    port = free_port()
    # behind a proxy, opsplane scrapes each instance (nothing runs the proxy here: scrapes do not
    # go through it); a scrape waits 1 s for an answer
    inventory = rig.write(
        "platform: {name: shop}\ndefaults: {interval: 15s, timeout: 1s}\n"
        f"proxies: {{edge: {{port: {free_port()}, engine: nginx}}}}\nservices:\n"
        + tiny("web", port).replace("    run: {", '    proxy: edge\n    run: {"instances": 2, ')
        + "alerting: {builtin_rules: {enabled: false}}\n")
    runtime.cli("up", "web")
    zero, one = running(runtime, "web", 2)
    psutil.Process(one.pid).suspend()  # instance 1 hangs: alive to the runtime, silent to its scrapes

    def scrape() -> None:
        from opsplane.metrics.scrape import instance_targets

        async def once() -> None:
            scraper = MetricsScraper(scrape_targets(inventory), clock=rig.clock, store=rig.samples)
            try:
                await scraper.replace_instances(instance_targets(inventory, runtime.driver().status()))
                for target in scraper.targets:
                    await scraper.scrape(target)
            finally:
                await scraper.close()

        asyncio.run(once())

    scrape()
    for _ in range(20):
        httpx.get(f"http://127.0.0.1:{zero.port}/health", trust_env=False)
    rig.clock.advance(15)
    scrape()
    person = Person(restart_ok=True)
    run_id = rig.start(inventory, "one-server-down", person, service="web", check="http")
    state = rig.drive(inventory, run_id, person, scrape)
    steps = rig.steps(run_id)
    assert state == "succeeded", json.dumps(steps, indent=1)
    assert list(steps) == ["serving", "instances", "one-down", "which", "load", "restart-ok", "restart",
                           "back", "why"]
    assert steps["serving"][0] == "ok"
    ups = dict(line.rsplit(" ", 1) for line in steps["instances"][1].splitlines())
    down = [labels for labels, value in ups.items() if value == "0"]
    assert len(ups) == 2 and len(down) == 1 and f'instance="127.0.0.1:{one.port}"' in down[0], ups
    assert f'instance="127.0.0.1:{zero.port}"' in steps["load"][1]  # the one that answers
    assert steps["one-down"][0] == "ok" and steps["which"] == ("ok", "one-down was ok: on to load")
    assert steps["restart"][0] == "ok" and f"pid {one.pid} -> " in steps["restart"][1]
    assert steps["back"][0] == "ok"
    assert {s.pid for s in running(runtime, "web", 2)}.isdisjoint({zero.pid, one.pid})
