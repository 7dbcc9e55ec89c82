"""Component status from check results, with dependency impact. Pure: values in, values out.

A component's own state is the worst of its checks. When a dependency is down (CRITICAL), the
component is *impacted* and its root causes are named by walking down the dependency graph to
the failing components that are not themselves explained by a failing dependency. A component
that fails on its own says so first and names its failing dependencies after: one does not
hide the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from opsplane.config.models import Inventory, check_name
from opsplane.health.models import ProbeResult, State, worst


@dataclass(frozen=True)
class RootCause:
    """A failing component at the end of a dependency chain: path[0] is a direct dependency."""

    path: tuple[str, ...]
    reason: str

    @property
    def component(self) -> str:
        return self.path[-1]

    def explain(self) -> str:
        """'depends on backend, which depends on postgres-main, which refuses connections'."""
        return "depends on " + ", which depends on ".join(self.path) + f", which {self.reason}"


@dataclass(frozen=True)
class CheckStatus:
    name: str
    type: str
    result: ProbeResult | None


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    section: str
    kind: str
    criticality: str
    team: str | None
    state: State
    checks: tuple[CheckStatus, ...]
    root_causes: tuple[RootCause, ...] = field(default=())

    @property
    def checked(self) -> bool:
        return any(c.result is not None for c in self.checks)

    @property
    def impacted(self) -> bool:
        return bool(self.root_causes)

    @property
    def own_reason(self) -> str:
        """What its own checks say: the failing ones by name ('http: HTTP 503 in 3 ms (URL)'),
        or the one OK check's reason, or how many checks are OK."""
        if not self.checks:
            return "no checks defined"
        if not self.checked:
            return "not checked"
        if self.state is State.OK:
            only = self.checks[0].result
            return only.reason if len(self.checks) == 1 and only else f"{len(self.checks)} checks OK"
        return "; ".join(
            f"{c.name}: {c.result.reason}" for c in self.checks
            if c.result and c.result.state is self.state
        )

    @property
    def reason(self) -> str:
        """What a person reads first: its own checks' failure, then each failing dependency
        ('http: HTTP 503 in 3 ms (URL); depends on postgres-main, which refuses connections
        (127.0.0.1:5432)'). A component that is OK but impacted reads as OK here; see
        `headline`."""
        own = self.own_reason
        if self.impacted and self.checked and self.state is not State.OK:
            return "; ".join([own, *(cause.explain() for cause in self.root_causes)])
        return own

    @property
    def headline(self) -> str:
        """'backend CRITICAL: http: HTTP 503 ...; depends on postgres-main, which refuses
        connections (127.0.0.1:5432)'."""
        if self.impacted and self.state is State.OK:
            return f"{self.name} OK but impacted: " + "; ".join(c.explain() for c in self.root_causes)
        return f"{self.name} {self.state}: {self.reason}"


def _describe(reason: str) -> str:
    """Turn a check reason into a clause after 'which': 'refuses connections (host:port)',
    'is down: HTTP 503 in 3 ms (URL)'."""
    lowered = reason[:1].lower() + reason[1:]
    verbs = ("refuses", "does", "has", "is ", "returns", "answers", "times", "timed", "failed")
    if lowered.startswith(verbs):
        return lowered
    return f"is down: {reason}"


def assess(inventory: Inventory, results: Mapping[str, ProbeResult]) -> list[ComponentStatus]:
    """Status of every component, given results keyed by check id ('component/check')."""
    own: dict[str, State] = {}
    reasons: dict[str, str] = {}
    checks: dict[str, tuple[CheckStatus, ...]] = {}
    for _, name, component in inventory.components():
        per_check = tuple(
            CheckStatus(check_name(c), c.type, results.get(f"{name}/{check_name(c)}"))  # type: ignore[attr-defined]
            for c in component.checks
        )
        checks[name] = per_check
        ran = [s.result for s in per_check if s.result is not None]
        own[name] = worst(r.state for r in ran) if ran else State.UNKNOWN
        failing = [s for s in per_check if s.result and s.result.state is own[name]]
        reasons[name] = failing[0].result.reason if failing and failing[0].result else "is unknown"

    graph = {name: component.depends_on for _, name, component in inventory.components()}
    memo: dict[str, tuple[RootCause, ...]] = {}

    def causes(start: str) -> tuple[RootCause, ...]:
        # Depth first with an explicit stack: dependency chains may be longer than Python's
        # recursion limit. A dependency already on the stack (a cycle, which the loader
        # refuses anyway) contributes nothing.
        stack, on_stack = [start], {start}
        while stack:
            name = stack[-1]
            if name in memo:
                stack.pop()
                continue
            down = [d for d in graph.get(name, []) if own.get(d) is State.CRITICAL]
            todo = [d for d in down if d not in memo and d not in on_stack]
            if todo:
                stack.extend(todo)
                on_stack.update(todo)
                continue
            found: list[RootCause] = []
            for dep in down:
                below = memo.get(dep, ())
                if below:
                    found.extend(RootCause((dep, *c.path), c.reason) for c in below)
                else:
                    found.append(RootCause((dep,), _describe(reasons[dep])))
            memo[name] = tuple(found)
            stack.pop()
            on_stack.discard(name)
        return memo[start]

    statuses: list[ComponentStatus] = []
    for section, name, component in inventory.components():
        statuses.append(
            ComponentStatus(
                name=name,
                section=section,
                kind=str(getattr(component, "kind", None) or getattr(component, "engine", section)),
                criticality=component.criticality.value,
                team=component.team,
                state=own[name] if checks[name] else State.UNKNOWN,
                checks=checks[name],
                root_causes=causes(name),
            )
        )
    return statuses


def overall(statuses: list[ComponentStatus]) -> State:
    """The worst state among components that have checks."""
    return worst(s.state for s in statuses if s.checked)
