"""The `gamedays:` section of the inventory: the scenarios a game day can play and the quarterly
schedule (what opsplane ships for the platform the inventory describes: `catalog.py`).

A scenario injects one fault (`kind`), watches what the platform does about it, and undoes it
after `max_duration` at the latest. What it measures (`expect`) is judged against targets: the
scenario's own, else the severity table's (`incidents.severities`): detection and paging
within the response time, recovery and resolution within the resolution target.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from opsplane.config.types import Duration, Ratio, Strict, TimeZone

Kind = Literal["kill", "errors", "latency", "stop-database", "stop-cache", "fill-disk"]
KINDS: tuple[Kind, ...] = ("kill", "errors", "latency", "stop-database", "stop-cache", "fill-disk")
MeasureName = Literal["detect", "page", "recover", "resolve"]
MEASURES: tuple[MeasureName, ...] = ("detect", "page", "recover", "resolve")
DEFAULT_EXPECT: tuple[MeasureName, ...] = ("detect", "page")
ScenarioName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=63)]
# the shop's admin token, as the demo inventory hands it to each service
SHOP_ADMIN_ENV = "SHOP_ADMIN_TOKEN"
DEFAULT_MAX_DURATION = 300.0
LONGEST = 4 * 3600.0  # a fault left in force longer than this is an outage, not a game day

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB|TiB)?\s*$")
_FACTORS = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20,
            "GiB": 2**30, "TiB": 2**40}


def parse_size(value: object) -> int:
    """Bytes from 536870912, '512MiB', '1.5 GB'; ValueError saying what is expected."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 512MiB or 2GB, got {value!r}")
    if isinstance(value, int | float):
        size = int(value)
    else:
        found = _SIZE.match(str(value))
        if found is None:
            raise ValueError(f"expected a size such as 512MiB or 2GB, got {value!r}")
        size = int(float(found.group(1)) * _FACTORS[found.group(2)])
    if size <= 0:
        raise ValueError(f"a size must be more than 0 bytes, got {value!r}")
    return size


def _cron(value: str) -> str:
    from opsplane.backup.schedule import parse_cron

    parse_cron(value)
    return value


Size = Annotated[int, BeforeValidator(parse_size)]
Cron = Annotated[str, AfterValidator(_cron)]
_BOUNDED = Annotated[float, Field(gt=0, le=LONGEST)]


class Targets(Strict):
    """How soon each measure must come, counted from the moment the fault was injected; a
    measure not given takes the severity table's."""

    detect: Duration | None = None
    page: Duration | None = None
    recover: Duration | None = None
    resolve: Duration | None = None


class Scenario(Strict):
    """One fault, what it is about, how long it may last, and what is expected to follow."""

    kind: Kind = Field(description="kill: stop the service's instances through the runtime; errors, "
                       "latency: the shop's fault injection on every instance; stop-database, "
                       "stop-cache: stop a PostgreSQL or Redis server opsplane started itself; "
                       "fill-disk: write a file into a scratch directory on the disk a host check watches.")
    target: str = Field(description="The component the fault is about (a service, database, cache or host).")
    description: str | None = None
    max_duration: Duration = Field(DEFAULT_MAX_DURATION, description="The fault is undone after this long "
                                   "at the latest (sooner once everything expected was seen).")
    settle: Duration = Field(120.0, description="After the fault is undone, how long recovery and "
                             "resolution are still waited for.")
    severity: Literal["P0", "P1", "P2", "P3"] = Field(
        "P1", description="Whose targets apply when no incident was opened (one that was gives its own).")
    expect: list[MeasureName] = Field(
        default_factory=lambda: list(DEFAULT_EXPECT),
        description="The measures that must come within their targets for the game day to pass: "
        "detect, page, recover (a runbook run for the incident succeeded), resolve.")
    targets: Targets = Field(default_factory=Targets)
    watch: list[str] = Field(default_factory=list, description="More components whose signals count "
                             "(the target's always do), e.g. the services that depend on it.")
    # errors
    ratio: Ratio | None = Field(None, description="errors: the share of requests that fail (default 0.5).")
    routes: list[str] = Field(default_factory=list, description="errors, latency: the routes faulted "
                              "(default every route, '*').")
    # latency
    delay: Duration | None = Field(None, description="latency: added to each request (default 2s).")
    # fill-disk
    directory: str | None = Field(None, description="fill-disk: where the scratch directory is made "
                                  "(on the disk the host check watches; default the inventory's directory).")
    size: Size | None = Field(None, description="fill-disk: how much to write, e.g. 512MiB (default: "
                              "enough to pass the check's disk_critical).")
    max_size: Size = Field(8 * 2**30, description="fill-disk: refuse rather than write more than this.")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Scenario:
        own = {"ratio": ("errors",), "delay": ("latency",), "routes": ("errors", "latency"),
               "directory": ("fill-disk",), "size": ("fill-disk",)}
        for name, kinds in own.items():
            if getattr(self, name) not in (None, []) and self.kind not in kinds:
                raise ValueError(f"{name} applies to kind {' or '.join(kinds)} only, not {self.kind}")
        if self.max_duration > LONGEST:
            raise ValueError(f"max_duration is at most {int(LONGEST // 3600)}h")
        if len(set(self.expect)) != len(self.expect):
            raise ValueError("expect: name each measure once")
        return self

    def target_of(self, measure: str) -> float | None:
        value: float | None = getattr(self.targets, measure)
        return value


class GamedaySchedule(Strict):
    """When the scheduled game day plays, and which scenario."""

    cron: Cron = Field(description="A cron expression, e.g. '0 10 1 1,4,7,10 *' (10:00 on the first "
                       "day of each quarter).")
    scenario: ScenarioName
    time_zone: TimeZone = Field("UTC", description="The zone the cron expression is read in.")
    max_duration: Duration | None = Field(None, description="Overrides the scenario's.")


class GamedaySettings(Strict):
    scenarios: dict[ScenarioName, Scenario] = Field(
        default_factory=dict, description="Scenarios by name; a name opsplane ships (kill-payments, "
        "payments-errors, stop-postgres-main, ...) is replaced by the one given here.")
    schedule: GamedaySchedule | None = Field(
        None, description="A game day played by `serve` on a schedule; none unless given.")
