"""Detection latency: how long after a fault opsplane and Prometheus + Alertmanager page.

    .venv/bin/python bench/detection.py [--repeat 3] [--quiet-minutes 10] [--error-for 60] [--no-save]

One run, both sides watching the same shop at the same time:

- the reference shop (gateway, catalog, orders, payments) as plain processes on a private
  PostgreSQL and Redis, with the shop's traffic generator sending shoppers, so that there
  are requests and errors to count;
- `opsplane serve` on the demo's inventory (checks and scrapes every 5 s) with an
  `alerting:` section that only adds the benchmark's two rules and a `default` receiver
  whose webhook is the recorder: its default routing, evaluation interval and timers;
- Debian's `prometheus` with the shipped example's intervals (scrape and evaluation every
  15 s) scraping the same `/metrics` with the labels opsplane gives them, the same rules
  (written by `opsplane export prometheus`), and `prometheus-alertmanager` with one route
  to the recorder and every timer at its default;
- one webhook recorder on loopback: `/opsplane` and `/alertmanager`, each POST kept with
  its arrival time.

Scenarios: a fault-free stretch (no notification expected), the payments process killed
(SIGKILL, at a random phase, `--repeat` times), and 5 % of payments' requests failing.
For each side: fault -> firing (the evaluation at which the alert fired, from opsplane's
event log and Prometheus's ALERTS series) and fault -> first webhook, then the fault is
removed and the run waits for both sides' resolved notifications.

Goal: opsplane at least 10x faster to the first notification for a hard-down service, and
no notification during the fault-free stretch.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _common import (
    Child,
    ChildFailed,
    Children,
    free_port,
    http_get,
    machine,
    program_version,
    raise_on_sigterm,
    wait_for_http,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opsplane.demo.stack import SHOP_SERVICES, DemoStack  # noqa: E402

SERVICE = "payments"
ENV = "development"  # the demo's default environment: the `env` label opsplane adds
SIDES = ("opsplane", "alertmanager")
SIDE_NAMES = {"opsplane": "opsplane", "alertmanager": "Prometheus + Alertmanager"}
DOWN_RULE = "ServiceDown"
ERROR_RULE = "HighErrorRate"
ERROR_RATIO = 0.05
PROMETHEUS_INTERVAL = 15.0  # scrape and evaluation, as Prometheus's example prometheus.yml
GOAL_FACTOR = 10.0
TRAFFIC = ["--rps", "20", "--mix", "browse=0.3,search=0.1,buy=0.6"]
WARM_UP = 40.0  # both sides have scraped every target at least twice
FIRING_TIMEOUT = 240.0
RESOLVED_TIMEOUT = 480.0  # Alertmanager's group_interval (5 m) and then some
# After its resolved notification an Alertmanager group lingers until the dispatcher's
# cleanup, every 30 s; an alert firing again meanwhile joins it and waits for the group's
# next group_interval instead of group_wait. Each fault starts after this pause.
SETTLE = 40.0


def rules(error_for: float) -> list[dict[str, Any]]:
    """The benchmark's rules, the same for both sides (opsplane's syntax; exported for
    Prometheus). "Payment processing completely broken" is a P0 in the manual."""
    errors = f'http_requests_total{{service="{SERVICE}"'
    return [
        {"name": DOWN_RULE, "expr": f'up{{service="{SERVICE}"}} == 0', "severity": "P0",
         "annotations": {"summary": "{{ $labels.service }} does not answer its scrape"}},
        {"name": ERROR_RULE,
         "expr": f'sum by (service) (rate({errors},status=~"5.."}}[1m])) '
                 f"/ sum by (service) (rate({errors}}}[1m])) > 0.01",
         "for": f"{error_for:g}s", "severity": "P1",
         "annotations": {"summary": "{{ $labels.service }} fails {{ $value | humanizePercentage }}"}},
    ]


# --- the webhook recorder ------------------------------------------------------------------


@dataclass
class Arrival:
    """One POST to the recorder."""

    side: str
    monotonic: float
    wall: float
    status: str
    alerts: list[tuple[str, str]]  # (alertname, status)


class Recorder:
    """A webhook receiver on loopback keeping every notification with its arrival time."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                now, wall = time.monotonic(), time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.end_headers()
                recorder.record(self.path.strip("/"), now, wall, body)

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, side: str) -> str:
        return f"http://127.0.0.1:{self.port}/{side}"

    def record(self, side: str, now: float, wall: float, body: bytes) -> None:
        try:
            message = json.loads(body)
        except ValueError:
            message = {}
        alerts = [(str(a.get("labels", {}).get("alertname")), str(a.get("status")))
                  for a in message.get("alerts", [])]
        with self.lock:
            self.arrivals.append(Arrival(side, now, wall, str(message.get("status")), alerts))

    def first(self, side: str, after: float, alertname: str, status: str) -> Arrival | None:
        """The first notification of `side` since `after` (monotonic) carrying `alertname`
        in `status`."""
        with self.lock:
            return next((a for a in self.arrivals if a.side == side and a.monotonic >= after
                         and (alertname, status) in a.alerts), None)

    def between(self, side: str, start: float, end: float) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if a.side == side and start <= a.monotonic < end]

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the two sides -------------------------------------------------------------------------


def alerting_yaml(error_for: float, webhook: str) -> str:
    """The inventory's `alerting:` section: the benchmark's rules and the `default` receiver
    (the one opsplane's default route sends to). No route, no timers, no interval: defaults.
    The built-in pack is switched off so that both sides evaluate the same two rules."""
    section = {"builtin_rules": {"enabled": False}, "rules": rules(error_for),
               "receivers": {"default": {"webhook": {"url": webhook}}}}
    return "alerting: " + json.dumps(section) + "\n"


def prometheus_yml(ports: dict[str, int], alertmanager_port: int, rule_file: Path) -> str:
    """Prometheus's example configuration (15 s scrape and evaluation), scraping the shop's
    services with the `job`, `service` and `env` labels opsplane gives them."""
    interval = f"{PROMETHEUS_INTERVAL:g}s"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "rule_files": [str(rule_file)],
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"],
                                                    "labels": {"service": name, "env": ENV}}]}
            for name, port in ports.items()],
    }
    return json.dumps(config, indent=2) + "\n"


def alertmanager_yml(webhook: str) -> str:
    """One route to one webhook; group_wait, group_interval and the rest at their defaults."""
    config = {"route": {"receiver": "recorder"},
              "receivers": [{"name": "recorder", "webhook_configs": [{"url": webhook}]}]}
    return json.dumps(config, indent=2) + "\n"


def export_rules(opsplane: list[str], inventory: Path, directory: Path, env: dict[str, str]) -> Path:
    """The inventory's rules as a Prometheus rule file (`opsplane export prometheus`),
    checked by promtool."""
    subprocess.run([*opsplane, "-c", str(inventory), "export", "prometheus", str(directory)],  # noqa: S603
                   check=True, capture_output=True, env=env)
    rule_file = directory / "opsplane-rules.yml"
    checked = subprocess.run(["promtool", "check", "rules", str(rule_file)],  # noqa: S603, S607
                             capture_output=True, text=True)
    if checked.returncode != 0:
        raise ChildFailed(f"promtool refused {rule_file}: {checked.stdout}{checked.stderr}")
    return rule_file


class Shop:
    """The shop's services as plain processes, each started as the demo inventory's `run`
    section says, so that one can be killed and started again on its port."""

    def __init__(self, stack: DemoStack, children: Children, tmp: Path) -> None:
        from opsplane.config.loader import load

        self.stack = stack
        self.children = children
        self.tmp = tmp
        self.inventory = load(stack.inventory_path)
        self.processes: dict[str, Child] = {}
        self.starts = 0

    def start(self, name: str) -> Child:
        from opsplane.config.types import SecretRef
        from opsplane.drivers.runtime.spec import substitute

        run = self.inventory.component(name).run
        assert run is not None
        port = self.stack.ports[name]

        def fill(text: str) -> str:
            return substitute(text, port=port, host="127.0.0.1", instance=0, service=name)

        env = {**os.environ, **{k: fill(v) for k, v in run.env.items()},
               **{k: SecretRef(str(ref)).resolve(dict(os.environ))
                  for k, ref in run.secret_env.items()}}
        self.starts += 1
        child = self.children.start(Child(f"{name}-{self.starts}", [fill(arg) for arg in run.argv],
                                          log=self.tmp / f"{name}.log", env=env))
        wait_for_http(f"http://127.0.0.1:{port}/version", child, timeout=30)
        self.processes[name] = child
        return child

    def kill(self, name: str) -> None:
        """SIGKILL to the service's process itself: a crash, nothing it could clean up."""
        os.kill(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].process.wait(5)  # type: ignore[union-attr]

    def set_faults(self, name: str, plan: dict[str, object] | None) -> None:
        """Replace (None: clear) the fault plan of `name` through its admin endpoint."""
        import httpx

        url = f"http://127.0.0.1:{self.stack.ports[name]}/admin/faults"
        headers = {"Authorization": f"Bearer {self.stack.admin_token()}"}
        answer = (httpx.delete(url, headers=headers, trust_env=False) if plan is None
                  else httpx.put(url, headers=headers, json=plan, trust_env=False))
        if answer.status_code != 200:
            raise ChildFailed(f"{name} refused the fault plan: HTTP {answer.status_code} {answer.text}")


# --- firing times --------------------------------------------------------------------------


def opsplane_fired(database: Path, rule: str, since_wall: float) -> float | None:
    """Wall time of the first `alert.firing` event of `rule` at or after `since_wall`: the
    evaluation at which it fired, from opsplane's event log."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as connection:
        rows = connection.execute(
            "SELECT ts FROM events WHERE kind = 'alert.firing' AND target = ? ORDER BY id",
            (rule,)).fetchall()
    for (ts,) in rows:
        at = datetime.fromisoformat(str(ts)).replace(tzinfo=UTC).timestamp()
        if at >= since_wall:
            return at
    return None


def prometheus_fired(url: str, rule: str, since_wall: float) -> float | None:
    """Wall time of the first evaluation at or after `since_wall` that wrote
    ALERTS{alertstate="firing"} for `rule`: when Prometheus fired it."""
    window = max(60, int(time.time() - since_wall) + 60)
    query = f'ALERTS{{alertname="{rule}",alertstate="firing"}}[{window}s]'
    status, body = http_get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}")
    if status != 200:
        return None
    stamps = [float(t) for series in json.loads(body)["data"]["result"] for t, _ in series["values"]]
    return min((t for t in stamps if t >= since_wall), default=None)


# --- one trial -----------------------------------------------------------------------------


@dataclass
class Trial:
    """One fault, seen from both sides. Seconds from the fault; None: not seen in time."""

    scenario: str
    phase_s: float  # random wait before the fault (after the pause that lets groups go)
    fault_at: str
    firing_s: dict[str, float | None] = field(default_factory=dict)
    webhook_s: dict[str, float | None] = field(default_factory=dict)
    resolved_s: dict[str, float | None] = field(default_factory=dict)  # from the fault's end


@dataclass
class Sides:
    """What the trials need to watch both sides and keep every process alive."""

    recorder: Recorder
    database: Path
    prometheus_url: str
    children: list[Child]

    def check_alive(self) -> None:
        for child in self.children:
            child.check_alive()

    def wait(self, until: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if until():
                return True
            time.sleep(0.2)
        return until()


def run_trial(scenario: str, rule: str, sides: Sides, phase: float,
              begin: Callable[[], None], end: Callable[[], None]) -> Trial:
    """Wait for the last fault's groups to go, and `phase` seconds more; start the fault,
    wait for both sides' firing notification, end the fault, wait for both sides' resolved
    notification."""
    sides.wait(lambda: False, SETTLE + phase)
    fault_mono, fault_wall = time.monotonic(), time.time()
    begin()
    trial = Trial(scenario, round(phase, 2), datetime.fromtimestamp(fault_wall, UTC).isoformat())
    recorder = sides.recorder
    sides.wait(lambda: all(recorder.first(s, fault_mono, rule, "firing") for s in SIDES),
               FIRING_TIMEOUT)
    for side in SIDES:
        arrival = recorder.first(side, fault_mono, rule, "firing")
        trial.webhook_s[side] = None if arrival is None else round(arrival.monotonic - fault_mono, 3)
    fired = {"opsplane": opsplane_fired(sides.database, rule, fault_wall),
             "alertmanager": prometheus_fired(sides.prometheus_url, rule, fault_wall)}
    trial.firing_s = {s: None if t is None else round(t - fault_wall, 3) for s, t in fired.items()}
    end_mono = time.monotonic()
    end()
    sides.wait(lambda: all(recorder.first(s, end_mono, rule, "resolved") for s in SIDES),
               RESOLVED_TIMEOUT)
    for side in SIDES:
        arrival = recorder.first(side, end_mono, rule, "resolved")
        trial.resolved_s[side] = None if arrival is None else round(arrival.monotonic - end_mono, 3)
    print(f"  {scenario} (after {phase:.1f} s): " + "; ".join(
        f"{SIDE_NAMES[s]} firing {_s(trial.firing_s[s])}, webhook {_s(trial.webhook_s[s])}, "
        f"resolved {_s(trial.resolved_s[s])} after the fault ended" for s in SIDES), flush=True)
    return trial


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


# --- the run -------------------------------------------------------------------------------


@dataclass
class Results:
    date: str
    command: str
    machine: str
    versions: dict[str, str]
    settings: dict[str, Any]
    quiet_minutes: float
    quiet_notifications: dict[str, int]
    quiet_alerts: dict[str, list[str]]
    trials: list[Trial]
    notes: list[str] = field(default_factory=list)


def run(args: argparse.Namespace) -> Results:
    opsplane = [str(ROOT / ".venv" / "bin" / "opsplane")]
    if not Path(opsplane[0]).exists():
        opsplane = [sys.executable, "-m", "opsplane"]
    rng = random.Random()
    with (tempfile.TemporaryDirectory(prefix="opsplane-detection-") as name, Children() as children,
          Recorder() as recorder):
        tmp = Path(name)
        stack = DemoStack(tmp / "platform")
        try:
            stack.start_servers()
            api_port = free_port()
            stack.write_inventory(api_port)
            with stack.inventory_path.open("a") as inventory:
                inventory.write(alerting_yaml(args.error_for, recorder.url("opsplane")))
            env = {**os.environ, "OPSPLANE_DATABASE_URL": f"sqlite:///{tmp / 'serve.db'}"}
            rule_file = export_rules(opsplane, stack.inventory_path, tmp / "export", env)

            shop = Shop(stack, children, tmp)
            for service in reversed(SHOP_SERVICES):  # gateway last: it needs the others
                shop.start(service)
            children.start(Child("traffic", [sys.executable, "-m", "shop.traffic", "--base-url",
                                             stack.gateway_url, "--duration", "0", *TRAFFIC],
                                 log=tmp / "traffic.log", cwd=ROOT))

            am_port, prom_port = free_port(), free_port()
            (tmp / "alertmanager.yml").write_text(alertmanager_yml(recorder.url("alertmanager")))
            alertmanager = children.start(Child("alertmanager", [
                "prometheus-alertmanager", f"--config.file={tmp / 'alertmanager.yml'}",
                f"--storage.path={tmp / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",  # one instance: no gossip port on every address
                "--log.level=warn"], log=tmp / "alertmanager.log"))
            wait_for_http(f"http://127.0.0.1:{am_port}/-/ready", alertmanager, timeout=30)
            (tmp / "prometheus.yml").write_text(prometheus_yml(stack.ports, am_port, rule_file))
            prometheus = children.start(Child("prometheus", [
                "prometheus", f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                log=tmp / "prometheus.log"))
            wait_for_http(f"http://127.0.0.1:{prom_port}/-/ready", prometheus, timeout=60)
            serve = children.start(Child("serve", [
                *opsplane, "-c", str(stack.inventory_path), "serve", "--port", str(api_port),
                "--log-level", "warning"], log=tmp / "serve.log", env=env))
            wait_for_http(f"http://127.0.0.1:{api_port}/health", serve, timeout=60)

            started = time.monotonic()
            sides = Sides(recorder, tmp / "serve.db", f"http://127.0.0.1:{prom_port}",
                          [alertmanager, prometheus, serve])
            print(f"shop on {stack.gateway_url}, opsplane on :{api_port}, Prometheus on "
                  f":{prom_port}, Alertmanager on :{am_port}; warming up {WARM_UP:g} s", flush=True)
            sides.wait(lambda: False, WARM_UP)
            if not _prometheus_sees_up(sides.prometheus_url):
                raise ChildFailed(f"Prometheus does not see {SERVICE} up after {WARM_UP:g} s")

            print(f"fault-free: {args.quiet_minutes:g} minutes", flush=True)
            sides.wait(lambda: False, args.quiet_minutes * 60)
            quiet_end = time.monotonic()
            quiet = {s: recorder.between(s, started, quiet_end) for s in SIDES}
            for side, arrivals in quiet.items():
                print(f"  {SIDE_NAMES[side]}: {len(arrivals)} notifications", flush=True)

            trials: list[Trial] = []

            def restart() -> None:
                shop.start(SERVICE)

            for _ in range(args.repeat):
                trials.append(run_trial("hard-down", DOWN_RULE, sides,
                                        rng.uniform(0, PROMETHEUS_INTERVAL),
                                        lambda: shop.kill(SERVICE), restart))
            trials.append(run_trial(
                "errors", ERROR_RULE, sides, rng.uniform(0, PROMETHEUS_INTERVAL),
                lambda: shop.set_faults(SERVICE, {"error_ratio": {"*": ERROR_RATIO}}),
                lambda: shop.set_faults(SERVICE, None)))
        finally:
            stack.stop()

    versions = {
        "prometheus": program_version(["prometheus", "--version"], r"version (\S+)"),
        "alertmanager": program_version(["prometheus-alertmanager", "--version"], r"version (\S+)"),
    }
    return Results(
        date=date.today().isoformat(),
        command=" ".join([".venv/bin/python bench/detection.py", *sys.argv[1:]]),
        machine=machine().describe(), versions=versions,
        settings={"opsplane_scrape_and_check_interval_s": 5.0, "prometheus_interval_s": PROMETHEUS_INTERVAL,
                  "error_for_s": args.error_for, "error_ratio": ERROR_RATIO, "traffic": TRAFFIC,
                  "rules": rules(args.error_for)},
        quiet_minutes=args.quiet_minutes,
        quiet_notifications={s: len(a) for s, a in quiet.items()},
        quiet_alerts={s: sorted({f"{n} ({st})" for a in arrivals for n, st in a.alerts})
                      for s, arrivals in quiet.items()},
        trials=trials)


def _prometheus_sees_up(url: str) -> bool:
    query = urllib.parse.urlencode({"query": f'up{{service="{SERVICE}"}} == 1'})
    status, body = http_get(f"{url}/api/v1/query?{query}")
    return status == 200 and bool(json.loads(body)["data"]["result"])


# --- the report ----------------------------------------------------------------------------


def _spread(values: Sequence[float | None]) -> tuple[float | None, str]:
    """Median and "median (min-max)" of the values seen; "-" when none; "k of n" when some
    were not seen."""
    seen = [v for v in values if v is not None]
    if not seen:
        return None, "not seen"
    middle = statistics.median(seen)
    text = f"{middle:.1f} s" if len(seen) == 1 else f"{middle:.1f} s ({min(seen):.1f}-{max(seen):.1f})"
    if len(seen) < len(values):
        text += f", {len(values) - len(seen)} of {len(values)} not seen"
    return middle, text


def scenario_rows(trials: list[Trial]) -> tuple[list[str], float | None]:
    """Markdown rows for one scenario and the ratio of the medians to the first webhook
    (Prometheus + Alertmanager over opsplane)."""
    medians: dict[str, float | None] = {}
    rows = []
    for side in SIDES:
        _, firing = _spread([t.firing_s.get(side) for t in trials])
        medians[side], webhook = _spread([t.webhook_s.get(side) for t in trials])
        _, resolved = _spread([t.resolved_s.get(side) for t in trials])
        rows.append(f"| {SIDE_NAMES[side]} | {firing} | {webhook} | {resolved} |")
    ours, theirs = medians["opsplane"], medians["alertmanager"]
    ratio = theirs / ours if ours and theirs else None
    return rows, ratio


def markdown(results: Results) -> tuple[str, bool]:
    """The "Detection latency" section of docs/benchmarks.md, and whether the goal is met."""
    versions = results.versions
    lines = [
        "## Detection latency",
        "",
        f"Measured on {results.date}: {results.machine}; Prometheus {versions['prometheus']}, "
        f"Alertmanager {versions['alertmanager']} (Debian packages); the reference shop on "
        "PostgreSQL and Redis, all on the same machine.",
        "",
        "```", results.command, "```", "",
        "Both sides watch the shop at the same time. opsplane: `opsplane serve` on the demo's "
        "inventory (scrapes and checks every 5 s) with its default evaluation interval, route "
        "and timers. Prometheus: 15 s scrape and evaluation (the shipped example), "
        "Alertmanager's default route timers (group_wait 30 s). Same rules: "
        f"`{DOWN_RULE}` `up{{service=\"{SERVICE}\"}} == 0`, P0, at once; `{ERROR_RULE}` 5xx "
        f"share of payments' requests over 1m > 1 %, `for: {results.settings['error_for_s']:g}s`, "
        "P1. Times are from the fault; resolved is from the fault's end. Medians (range).",
        "",
    ]
    down_ratio: float | None = None
    for scenario, title in (("hard-down", "payments killed (SIGKILL)"),
                            ("errors", f"{ERROR_RATIO:.0%} of payments' requests fail")):
        trials = [t for t in results.trials if t.scenario == scenario]
        if not trials:
            continue
        rows, ratio = scenario_rows(trials)
        lines += [f"**{title}**, {len(trials)} time{'s' if len(trials) > 1 else ''}:", "",
                  "| Side | Fault to firing | Fault to first webhook | Resolved webhook |",
                  "| --- | ---: | ---: | ---: |", *rows, "",
                  "First webhook: " + ("no ratio (a side never notified)" if ratio is None else
                                       f"opsplane {ratio:.1f}x faster (ratio of the medians)") + ".",
                  ""]
        if scenario == "hard-down":
            down_ratio = ratio
    met_down = down_ratio is not None and down_ratio >= GOAL_FACTOR
    quiet = results.quiet_notifications
    quiet_met = quiet["opsplane"] == 0
    lines += [
        f"Fault-free, {results.quiet_minutes:g} minutes (and the warm-up before): "
        + ", ".join(f"{SIDE_NAMES[s]} {quiet[s]} notifications"
                    + (f" ({', '.join(results.quiet_alerts[s])})" if results.quiet_alerts[s] else "")
                    for s in SIDES) + ".",
        "",
        "| Goal | Result | Figures |",
        "| --- | --- | --- |",
        f"| opsplane at least {GOAL_FACTOR:g}x faster to the first notification, hard-down | "
        f"{'met' if met_down else 'NOT MET'} | "
        f"{'-' if down_ratio is None else f'{down_ratio:.1f}x'} (ratio of the medians) |",
        f"| no notification in {results.quiet_minutes:g} fault-free minutes | "
        f"{'met' if quiet_met else 'NOT MET'} | opsplane {quiet['opsplane']}, "
        f"Prometheus + Alertmanager {quiet['alertmanager']} |",
    ]
    lines += ["", "Every fault, in the order they ran (seconds; firing / first webhook / resolved):", "",
              "| Fault | Waited first | opsplane | Prometheus + Alertmanager |",
              "| --- | ---: | ---: | ---: |"]
    for trial in results.trials:
        cells = [" / ".join(_s(getattr(trial, f)[side]).removesuffix(" s")
                            for f in ("firing_s", "webhook_s", "resolved_s")) for side in SIDES]
        lines.append(f"| {trial.scenario} | {trial.phase_s:.1f} s | {cells[0]} | {cells[1]} |")
    lines += [f"- {note}" for note in results.notes]
    return "\n".join(lines), met_down and quiet_met


def load_results(path: Path) -> Results:
    """Results saved by an earlier run, to render its report again."""
    data = json.loads(path.read_text())
    data["trials"] = [Trial(**trial) for trial in data["trials"]]
    return Results(**data)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="hard-down faults, each at a random phase")
    parser.add_argument("--quiet-minutes", type=float, default=10.0, help="fault-free stretch first")
    parser.add_argument("--error-for", type=float, default=60.0,
                        help=f"seconds of `for` on {ERROR_RULE} (both sides)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    parser.add_argument("--report", type=Path, metavar="JSON",
                        help="only print the report of saved results")
    args = parser.parse_args(argv)
    if args.report is not None:
        try:
            text, met = markdown(load_results(args.report))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"cannot read results from {args.report}: {exc}", file=sys.stderr)
            return 1
        print(text)
        return 0 if met else 2
    if args.repeat < 1 or args.quiet_minutes < 0 or args.error_for < 0:
        parser.error("--repeat must be at least 1, --quiet-minutes and --error-for at least 0")
    raise_on_sigterm()
    try:
        results = run(args)
    except (ChildFailed, subprocess.CalledProcessError) as exc:
        print(f"detection benchmark failed: {exc}", file=sys.stderr)
        return 1
    if not args.no_save:  # before the report, so that a long run is never lost
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(exist_ok=True)
        out = out_dir / f"detection-{results.date}.json"
        out.write_text(json.dumps(asdict(results), indent=2))
        print(f"full results: {out}")
    text, met = markdown(results)
    print("\n" + text)
    return 0 if met else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
