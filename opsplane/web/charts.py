"""SVG drawn on the server: sparklines for the last hour and the dependency graph.

Pure functions from values to markup, so the dashboard needs no JavaScript charting library
and the charts can be tested as strings. Every piece of text that reaches the SVG is escaped
here, because the result is handed to the templates as already-safe markup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from opsplane.health.models import State


def state_class(state: State | None) -> str:
    """The CSS class of a state; colours always come with the state's name in text."""
    return f"state-{state.value.lower()}" if state is not None else "state-none"


# --- sparklines -----------------------------------------------------------------------------


def sparkline(
    values: Sequence[float | None],
    *,
    label: str,
    marks: Sequence[bool] = (),
    width: int = 120,
    height: int = 28,
    top: float | None = None,
) -> Markup:
    """A line through `values` (None leaves a gap), scaled from 0 to the largest value (or to
    `top`, for a share such as a budget left), with a tick under each position whose `marks`
    entry is true (a bucket with failed runs).

    `label` is the chart's accessible name and tooltip: say in words what the line shows.
    """
    known = [v for v in values if v is not None]
    top = top or max(known, default=0.0) or 1.0
    steps = max(len(values) - 1, 1)
    plot_height = height - 6  # room for the failure ticks below the line

    def x(i: int) -> float:
        return 1 + i * (width - 2) / steps

    def y(value: float) -> float:
        return 1 + (plot_height - 2) * (1 - value / top)

    parts = [f'<line class="base" x1="0" y1="{plot_height}" x2="{width}" y2="{plot_height}"/>']
    for run in _runs(values):
        if len(run) == 1:
            i, value = run[0]
            parts.append(f'<circle class="dot" cx="{x(i):.1f}" cy="{y(value):.1f}" r="1.5"/>')
        else:
            points = " ".join(f"{x(i):.1f},{y(value):.1f}" for i, value in run)
            parts.append(f'<polyline class="line" points="{points}"/>')
    tick = max(width / max(len(values), 1), 2.0)
    for i, marked in enumerate(marks):
        if marked:
            parts.append(f'<rect class="fail" x="{x(i) - tick / 2:.1f}" y="{height - 4}" '
                         f'width="{tick:.1f}" height="4"/>')
    name = escape(label)
    return Markup(
        f'<svg class="spark" role="img" aria-label="{name}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{name}</title>'
        + "".join(parts) + "</svg>"
    )


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Consecutive known values, split at the gaps."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for i, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((i, value))
    if current:
        runs.append(current)
    return runs


# --- dependency graph -----------------------------------------------------------------------


@dataclass(frozen=True)
class GraphNode:
    """A component as the graph draws it."""

    name: str
    state: State | None  # None: not checked yet
    impacted: bool = False


NODE_WIDTH, NODE_HEIGHT, GAP_X, GAP_Y, MARGIN = 168, 46, 28, 64, 12
_MAX_LABEL = 22


def layers(depends_on: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Components in rows, top to bottom: each component sits above everything it depends on.

    A component's row counts up from the bottom by the longest chain of dependencies below it
    (the inventory loader has refused cycles). Within a row, components are ordered by where
    their dependants sit, which keeps most edges short and uncrossed.
    """
    depth = _depths(depends_on)
    rows: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in depends_on:  # inventory order
        rows[depth[name]].append(name)
    rows.reverse()
    placed: dict[str, float] = {}
    dependants: dict[str, list[str]] = {name: [] for name in depends_on}
    for name, deps in depends_on.items():
        for dep in deps:
            if dep in dependants:
                dependants[dep].append(name)
    for r, row in enumerate(rows):
        if r > 0:
            order = {name: i for i, name in enumerate(row)}

            def key(name: str, order: dict[str, int] = order) -> tuple[float, int]:
                above = [placed[d] for d in dependants[name] if d in placed]
                return (sum(above) / len(above) if above else float("inf"), order[name])

            row.sort(key=key)
        for i, name in enumerate(row):
            placed[name] = i - (len(row) - 1) / 2
    return rows


def _depths(depends_on: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Longest chain of dependencies below each component, without recursion (chains may be
    long); an edge that would close a cycle is ignored rather than followed forever."""
    depth: dict[str, int] = {}

    def below(name: str) -> list[str]:
        return [d for d in depends_on.get(name, ()) if d in depends_on]

    for start in depends_on:
        if start in depth:
            continue
        path = {start}
        stack = [(start, iter(below(start)))]
        while stack:
            name, pending = stack[-1]
            for dep in pending:
                if dep not in depth and dep not in path:
                    path.add(dep)
                    stack.append((dep, iter(below(dep))))
                    break
            else:
                stack.pop()
                path.discard(name)
                depth[name] = 1 + max((depth.get(d, -1) for d in below(name)), default=-1)
    return depth


def dependency_graph(
    nodes: Sequence[GraphNode],
    depends_on: Mapping[str, Sequence[str]],
    *,
    link: Callable[[str], str],
) -> Markup:
    """The components as boxes in dependency rows, an arrow from each to what it depends on,
    each box filled by state, naming the state in words, and linking to `link(name)`."""
    by_name = {n.name: n for n in nodes}
    rows = layers({n.name: list(depends_on.get(n.name, ())) for n in nodes})
    widest = max((len(r) for r in rows), default=0)
    width = MARGIN * 2 + widest * NODE_WIDTH + max(widest - 1, 0) * GAP_X
    height = MARGIN * 2 + len(rows) * NODE_HEIGHT + max(len(rows) - 1, 0) * GAP_Y
    where: dict[str, tuple[float, float]] = {}
    for r, row in enumerate(rows):
        row_width = len(row) * NODE_WIDTH + (len(row) - 1) * GAP_X
        left = (width - row_width) / 2
        for i, name in enumerate(row):
            where[name] = (left + i * (NODE_WIDTH + GAP_X), MARGIN + r * (NODE_HEIGHT + GAP_Y))
    edges = []
    for name, (x, y) in where.items():
        for dep in depends_on.get(name, ()):
            if dep not in where:
                continue
            dx, dy = where[dep]
            down = by_name[dep].state is State.CRITICAL
            edges.append(
                f'<line class="edge{" edge-down" if down else ""}" x1="{x + NODE_WIDTH / 2:.1f}" '
                f'y1="{y + NODE_HEIGHT:.1f}" x2="{dx + NODE_WIDTH / 2:.1f}" y2="{dy - 3:.1f}" '
                f'marker-end="url(#arrow)"/>')
    boxes = [_node(by_name[name], x, y, link) for name, (x, y) in where.items()]
    return Markup(
        f'<svg class="graph" role="img" aria-labelledby="graph-title" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        'xmlns="http://www.w3.org/2000/svg">'
        '<title id="graph-title">Dependencies: each arrow points from a component to one it '
        'depends on</title>'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" '
        'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path class="arrowhead" d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>'
        + "".join(edges) + "".join(boxes) + "</svg>"
    )


def _node(node: GraphNode, x: float, y: float, link: Callable[[str], str]) -> str:
    state = node.state.value if node.state is not None else "not checked"
    label = state + (", impacted" if node.impacted and node.state is State.OK else "")
    shown = node.name if len(node.name) <= _MAX_LABEL else node.name[: _MAX_LABEL - 1] + "\u2026"
    return (
        f'<a href="{escape(link(node.name))}" class="node {state_class(node.state)}">'
        f"<title>{escape(node.name)}: {escape(label)}</title>"
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6"/>'
        f'<text class="name" x="{x + NODE_WIDTH / 2:.1f}" y="{y + 19:.1f}">{escape(shown)}</text>'
        f'<text class="state" x="{x + NODE_WIDTH / 2:.1f}" y="{y + 36:.1f}">{escape(label)}</text>'
        "</a>"
    )
