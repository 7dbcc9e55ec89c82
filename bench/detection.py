"""Detection latency: from a fault to the page, opsplane against Prometheus + Alertmanager.

    .venv/bin/python bench/detection.py [--repeat 20] [--errors 1] [--quiet-minutes 5] [--no-save]
    .venv/bin/python bench/detection.py --report bench/results/detection-DATE.json

The reference shop (gateway, catalog, orders, payments) runs under opsplane's process
runtime, as `opsplane demo` runs it, on a private PostgreSQL and Redis, with its traffic
generator buying often enough that payments sees a few charges a second; payments has
`restart: never`, so a killed payments stays down. Three sides watch it, each started
afresh for every fault (no alert group or notification log carried from one fault into the
next):

- `opsplane serve` on the shop's inventory: checks and scrapes every 5 s, the default
  evaluation interval (15 s) and routing tree (P0 without group_wait), following the
  runtime's supervisor;
- Debian's `prometheus` scraping and evaluating every 15 s (its shipped example's interval),
  with its own `prometheus-alertmanager`;
- the same with 5 s, opsplane's own interval: the fair comparison.

Both Prometheus sides scrape the same four `/metrics` with the labels opsplane gives them,
evaluate the same rules (from `opsplane export prometheus`, checked by promtool) and send to
an Alertmanager with the same routing tree, timers and inhibitions as opsplane (also from the
export). One webhook recorder on loopback takes every side's notifications with their arrival
times.

Scenarios: a fault-free stretch (no notification expected), payments killed with SIGKILL
`--repeat` times (each after a warm-up and a random wait of up to 15 s), and 5 % of payments'
requests failing `--errors` times. Per fault and side: fault to firing (opsplane's
`alert.firing` event, Prometheus's first `ALERTS{alertstate="firing"}` sample) and fault to
the first webhook. Goal: opsplane's median from SIGKILL to the page under 1 s, at least 10x
faster than Prometheus + Alertmanager at the same 5 s interval, and no page when nothing is
wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from _common import ChildFailed, Children, free_port, http_get, machine, program_version, raise_on_sigterm
from _detection_report import Results, Trial, markdown
from _detection_sides import (
    PrometheusSetup,
    Recorder,
    Sides,
    event_times,
    prometheus_fired,
    prometheus_sees,
    start_sides,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opsplane.demo.stack import SHOP_SERVICES, DemoStack  # noqa: E402

SERVICE = "payments"
DOWN_RULE = "ServiceDown"
ERROR_RULE = "HighErrorRate"
ERROR_RATIO = 0.05
OPSPLANE_INTERVAL = 5.0  # the demo inventory's checks and scrapes
SETUPS = [PrometheusSetup("prometheus-15s", 15.0), PrometheusSetup("prometheus-5s", 5.0)]
SIDES = ("opsplane", *(s.name for s in SETUPS))
WARM_UP = 35.0  # every side has scraped and evaluated at least twice (two 15 s intervals)
ERRORS_WARM_UP = 75.0  # and has a minute of request rates for the error ratio
PHASE = 15.0  # a fault starts at a random point of the longest interval
FIRING_TIMEOUT = 120.0
ERRORS_TIMEOUT = 360.0
# Shoppers: more, and more of them buying, than in the demo, so that payments sees a few
# charges a second and 5 % of them failing is a steady error ratio over a minute.
TRAFFIC = ["--rps", "20", "--mix", "browse=0.3,search=0.1,buy=0.6"]


def rules(error_for: float) -> list[dict[str, Any]]:
    """The benchmark's rules, the same for every side (opsplane's syntax; exported for
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


def prepare_inventory(path: Path, *, webhook: str, error_for: float) -> None:
    """The demo's inventory with payments not restarted, the benchmark's shoppers, and an
    `alerting:` section of only the benchmark's rules (the built-in pack off, so every side
    evaluates the same two) and a `default` receiver: no route, no timers, no interval, so
    opsplane's defaults apply."""
    inventory = yaml.safe_load(path.read_text())
    inventory["services"][SERVICE]["run"]["restart"] = "never"
    shoppers = inventory["services"]["traffic"]["run"]
    base_url = shoppers["argv"][shoppers["argv"].index("--base-url") + 1]
    shoppers["argv"] = [sys.executable, "-m", "shop.traffic", "--base-url", base_url, "--duration", "0",
                        *TRAFFIC]
    inventory["alerting"] = {"builtin_rules": {"enabled": False}, "rules": rules(error_for),
                             "receivers": {"default": {"webhook": {"url": webhook}}}}
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))


def export(opsplane: list[str], inventory: Path, directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The inventory's rules and Alertmanager configuration (`opsplane export prometheus`),
    the rules checked by promtool."""
    env = {**os.environ, "OPSPLANE_DATABASE_URL": f"sqlite:///{directory / 'export.db'}"}
    subprocess.run([*opsplane, "-c", str(inventory), "export", "prometheus", str(directory)],  # noqa: S603
                   check=True, capture_output=True, env=env)
    checked = subprocess.run(["promtool", "check", "rules", str(directory / "opsplane-rules.yml")],  # noqa: S603, S607
                             capture_output=True, text=True)
    if checked.returncode != 0:
        raise ChildFailed(f"promtool refused the exported rules: {checked.stdout}{checked.stderr}")
    return (yaml.safe_load((directory / "opsplane-rules.yml").read_text()),
            yaml.safe_load((directory / "alertmanager.yml").read_text()))


class Shop:
    """The shop under the runtime: payments killed, started again, and given faults."""

    def __init__(self, stack: DemoStack) -> None:
        self.stack = stack

    @property
    def port(self) -> int:
        return self.stack.ports[SERVICE]

    def kill(self) -> tuple[float, float]:
        """SIGKILL to payments' process (a crash, nothing it could clean up); the monotonic
        and wall times just before."""
        [instance] = [s for s in self.stack.runtime.status() if s.service == SERVICE and s.pid]
        mono, wall = time.monotonic(), time.time()
        os.kill(instance.pid, signal.SIGKILL)
        return mono, wall

    def start_again(self) -> None:
        self.stack.runtime.up([SERVICE])  # a failed instance under `restart: never` starts anew
        deadline = time.monotonic() + 30
        while http_get(f"http://127.0.0.1:{self.port}/version", timeout=2)[0] != 200:
            if time.monotonic() > deadline:
                raise ChildFailed(f"{SERVICE} did not answer within 30 s of `opsplane up {SERVICE}`")
            time.sleep(0.1)

    def set_faults(self, plan: dict[str, object] | None) -> None:
        """Replace (None: clear) payments' fault plan through its admin endpoint."""
        import httpx

        url = f"http://127.0.0.1:{self.port}/admin/faults"
        headers = {"Authorization": f"Bearer {self.stack.admin_token()}"}
        answer = (httpx.delete(url, headers=headers, trust_env=False) if plan is None
                  else httpx.put(url, headers=headers, json=plan, trust_env=False))
        if answer.status_code != 200:
            raise ChildFailed(f"{SERVICE} refused the fault plan: HTTP {answer.status_code} {answer.text}")


@dataclass
class Run:
    """What every fault needs: the sides' recipe and where each fault's files go."""

    children: Children
    tmp: Path
    opsplane: list[str]
    inventory: Path
    ports: dict[str, int]
    exported: tuple[dict[str, Any], dict[str, Any]]
    recorder: Recorder
    runtime_store: Path
    faults: int = 0

    def sides(self) -> Sides:
        self.faults += 1
        rule_file, alertmanager = self.exported
        return start_sides(self.children, self.tmp / f"fault-{self.faults}", opsplane=self.opsplane,
                           inventory=self.inventory, setups=SETUPS, ports=self.ports, rules=rule_file,
                           alertmanager=alertmanager, recorder=self.recorder)

    def warm_up(self, sides: Sides, seconds: float) -> None:
        sides.wait(lambda: False, seconds)
        for name, url in sides.prometheus_urls.items():
            if not prometheus_sees(url, f'up{{service="{SERVICE}"}} == 1'):
                raise ChildFailed(f"{name} does not see {SERVICE} up after {seconds:g} s")


def fault(run: Run, scenario: str, rule: str, *, warm_up: float, timeout: float,
          begin: Callable[[], tuple[float, float]], end: Callable[[], None], rng: random.Random) -> Trial:
    """Fresh sides, a warm-up and a random wait; the fault; every side's page (or `timeout`);
    the sides stopped, the fault ended."""
    sides = run.sides()
    try:
        run.warm_up(sides, warm_up)
        phase = rng.uniform(0, PHASE)
        sides.wait(lambda: False, phase)
        fault_mono, fault_wall = begin()
        sides.wait(lambda: all(run.recorder.first(s, fault_mono, rule) for s in SIDES), timeout)
        trial = Trial(scenario, round(phase, 2), datetime.fromtimestamp(fault_wall, UTC).isoformat())
        for side in SIDES:
            arrival = run.recorder.first(side, fault_mono, rule)
            trial.webhook_s[side] = None if arrival is None else round(arrival.monotonic - fault_mono, 3)
        ours = event_times(sides.serve_database, "alert.firing", rule, fault_wall)
        fired = {"opsplane": ours[0] if ours else None}
        for name, url in sides.prometheus_urls.items():
            fired[name] = prometheus_fired(url, rule, fault_wall)
        trial.firing_s = {s: None if t is None else round(t - fault_wall, 3) for s, t in fired.items()}
        if scenario == "hard-down":
            noticed = event_times(run.runtime_store, "runtime.exited", SERVICE, fault_wall)
            trial.exit_seen_s = round(noticed[0] - fault_wall, 3) if noticed else None
        print(f"  {scenario} (after {phase:.1f} s): " + "; ".join(
            f"{side} firing {_s(trial.firing_s[side])}, page {_s(trial.webhook_s[side])}" for side in SIDES),
            flush=True)
        return trial
    finally:
        sides.stop()
        end()


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def run_all(args: argparse.Namespace) -> Results:
    opsplane = [str(ROOT / ".venv" / "bin" / "opsplane")]
    if not Path(opsplane[0]).exists():
        opsplane = [sys.executable, "-m", "opsplane"]
    rng = random.Random()
    load_before = os.getloadavg()
    with (tempfile.TemporaryDirectory(prefix="opsplane-detection-") as name, Children() as children,
          Recorder() as recorder):
        tmp = Path(name)
        stack = DemoStack(tmp / "platform")
        try:
            from opsplane.config.loader import load

            stack.start_servers()
            stack.write_inventory(free_port())
            prepare_inventory(stack.inventory_path, webhook=recorder.url("opsplane"),
                              error_for=args.error_for)
            exported = export(opsplane, stack.inventory_path, tmp / "export")
            stack.start_shop(load(stack.inventory_path))
            shop = Shop(stack)
            run = Run(children, tmp, opsplane, stack.inventory_path,
                      {name: stack.ports[name] for name in SHOP_SERVICES}, exported, recorder,
                      stack.base / "opsplane.db")
            print(f"shop on {stack.gateway_url} under the runtime; {len(SIDES)} sides per fault", flush=True)

            quiet: dict[str, int] = dict.fromkeys(SIDES, 0)
            quiet_alerts: dict[str, list[str]] = {side: [] for side in SIDES}
            if args.quiet_minutes > 0:
                print(f"fault-free: {args.quiet_minutes:g} minutes", flush=True)
                started = time.monotonic()
                sides = run.sides()
                try:
                    sides.wait(lambda: False, args.quiet_minutes * 60)
                finally:
                    sides.stop()
                for side in SIDES:
                    arrivals = recorder.between(side, started, time.monotonic())
                    quiet[side] = len(arrivals)
                    quiet_alerts[side] = sorted({f"{n} ({st})" for a in arrivals for n, st in a.alerts})
                    print(f"  {side}: {quiet[side]} notifications", flush=True)

            trials = [fault(run, "hard-down", DOWN_RULE, warm_up=WARM_UP, timeout=FIRING_TIMEOUT,
                            begin=shop.kill, end=shop.start_again, rng=rng) for _ in range(args.repeat)]

            def errors_begin() -> tuple[float, float]:
                mono, wall = time.monotonic(), time.time()
                shop.set_faults({"error_ratio": {"*": ERROR_RATIO}})
                return mono, wall

            trials += [fault(run, "errors", ERROR_RULE, warm_up=ERRORS_WARM_UP, timeout=ERRORS_TIMEOUT,
                             begin=errors_begin, end=lambda: shop.set_faults(None), rng=rng)
                       for _ in range(args.errors)]
        finally:
            stack.stop()

    versions = {
        "prometheus": program_version(["prometheus", "--version"], r"version (\S+)"),
        "alertmanager": program_version(["prometheus-alertmanager", "--version"], r"version (\S+)"),
    }
    route = exported[1]["route"]
    return Results(
        date=date.today().isoformat(),
        command=" ".join([".venv/bin/python bench/detection.py", *sys.argv[1:]]),
        machine=machine().describe(), load_average=[round(x, 2) for x in (*load_before, *os.getloadavg())],
        versions=versions,
        settings={"opsplane_interval_s": OPSPLANE_INTERVAL,
                  "prometheus_intervals_s": {s.name: s.interval for s in SETUPS},
                  "alertmanager_route": route, "warm_up_s": WARM_UP, "phase_s": PHASE,
                  "error_for_s": args.error_for, "error_ratio": ERROR_RATIO, "rules": rules(args.error_for)},
        quiet_minutes=args.quiet_minutes, quiet_notifications=quiet, quiet_alerts=quiet_alerts,
        trials=trials)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="hard-down faults, each at a random phase")
    parser.add_argument("--errors", type=int, default=1, help="faults of 5 %% failing requests")
    parser.add_argument("--quiet-minutes", type=float, default=5.0, help="fault-free stretch first")
    parser.add_argument("--error-for", type=float, default=60.0,
                        help=f"seconds of `for` on {ERROR_RULE} (every side)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    parser.add_argument("--report", type=Path, metavar="JSON", help="only print the report of saved results")
    args = parser.parse_args(argv)
    if args.report is not None:
        try:
            text, met = markdown(Results.from_file(args.report))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"cannot read results from {args.report}: {exc}", file=sys.stderr)
            return 1
        print(text)
        return 0 if met else 2
    if args.repeat < 1 or args.errors < 0 or args.quiet_minutes < 0 or args.error_for < 0:
        parser.error("--repeat must be at least 1; --errors, --quiet-minutes and --error-for at least 0")
    raise_on_sigterm()
    try:
        results = run_all(args)
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
