"""Server-drawn SVG: sparklines with gaps and failure ticks, the dependency layout, and the
runtime adapter behind the instance list."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

from opsplane.config.loader import loads
from opsplane.health.models import State
from opsplane.web.charts import GraphNode, dependency_graph, layers, sparkline
from opsplane.web.instances import RuntimeView
from tests.web.conftest import StandInRuntime


def test_sparkline_breaks_at_missing_buckets_and_ticks_failed_ones() -> None:
    svg = str(sparkline([1.0, 2.0, None, 4.0, 3.0, None, 5.0], label="latency",
                        marks=[False, False, False, True, False, False, False]))
    assert svg.count("<polyline") == 2  # [1, 2] and [4, 3]
    assert svg.count("<circle") == 1  # the lone 5 after the second gap
    assert svg.count('class="fail"') == 1
    points = re.findall(r'points="([^"]+)"', svg)[1].split()
    assert float(points[0].split(",")[1]) < float(points[1].split(",")[1])  # 4 drawn above 3


def test_sparkline_of_nothing_is_a_baseline_and_its_label_is_escaped() -> None:
    svg = str(sparkline([None] * 5, label='no data for <"x">'))
    assert "<polyline" not in svg and 'class="base"' in svg
    assert 'aria-label="no data for &lt;&#34;x&#34;&gt;"' in svg


def test_layers_put_each_component_above_what_it_depends_on() -> None:
    graph = {"gateway": ["catalog", "orders"], "catalog": ["postgres"], "orders": ["postgres", "redis"],
             "postgres": [], "redis": [], "admin": ["postgres"]}
    rows = layers(graph)
    assert rows[0] == ["gateway"]
    assert set(rows[1]) == {"catalog", "orders", "admin"}
    assert set(rows[2]) == {"postgres", "redis"}
    row_of = {name: i for i, row in enumerate(rows) for name in row}
    assert all(row_of[dep] > row_of[name] for name, deps in graph.items() for dep in deps)


def test_layers_follow_the_longest_chain_whatever_the_order_and_length() -> None:
    rows = layers({"a": ["c", "b"], "b": ["c"], "c": []})
    assert rows == [["a"], ["b"], ["c"]]
    chain = {f"s{i}": [f"s{i + 1}"] if i < 2999 else [] for i in range(3000)}
    rows = layers(chain)
    assert len(rows) == 3000 and rows[0] == ["s0"] and rows[-1] == ["s2999"]


def test_graph_nodes_link_to_their_page_and_name_their_state_in_text() -> None:
    nodes = [GraphNode("web", State.OK, impacted=True), GraphNode("db", State.CRITICAL),
             GraphNode("cache", None)]
    svg = str(dependency_graph(nodes, {"web": ["db", "cache"]}, link=lambda n: f"/ui/services/{n}"))
    assert svg.count("<a ") == 3 and svg.count('class="edge') == 2
    assert ">OK, impacted</text>" in svg and ">CRITICAL</text>" in svg and ">not checked</text>" in svg
    assert 'class="node state-critical"' in svg and 'class="node state-none"' in svg


# --- instances -------------------------------------------------------------------------------


INVENTORY = "platform: {name: shop}\nservices: {catalog: {port: 8101}}\n"


def test_without_a_runtime_the_list_says_so() -> None:
    view = RuntimeView(loads(INVENTORY), base_dir=Path.cwd())
    found = asyncio.run(view.instances(datetime.now(UTC)))
    assert found.rows == () and found.note is not None and found.note.startswith("no runtime")


def test_a_runtime_s_instances_are_listed_and_filtered_by_service() -> None:
    runtime = StandInRuntime()
    view = RuntimeView(loads(INVENTORY), base_dir=Path.cwd(), driver=runtime)
    found = asyncio.run(view.instances(datetime(2026, 1, 6, 10, 0, tzinfo=UTC)))
    assert [(r.service, r.instance, r.state) for r in found.rows] == [
        ("catalog", "1", "running"), ("catalog", "2", "failed"), ("orders", "1", "running")]
    catalog = found.of("catalog")
    assert len(catalog.rows) == 2 and catalog.rows[1].last_exit == "exit 1"
    assert catalog.rows[0].rss_bytes == 50 * 2**20 and runtime.asked == 1
    assert catalog.rows[0].uptime == 3600.0 and catalog.rows[1].uptime is None
