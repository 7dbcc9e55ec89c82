"""Rules of one evaluation cycle share their selections; a new cycle reads afresh."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from opsplane.alerts.engine import evaluate_with
from opsplane.metrics.promql import Labels, Matcher, MemorySource, Sample

T = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Counting:
    """A series source that counts the selections it answers."""

    def __init__(self, source: MemorySource) -> None:
        self.source = source
        self.calls = 0

    def select(self, matchers: Sequence[Matcher], start: float,
               end: float) -> list[tuple[Labels, Sequence[Sample]]]:
        self.calls += 1
        return list(self.source.select(matchers, start, end))


def test_rules_of_one_cycle_share_a_selection_and_the_next_cycle_sees_new_samples() -> None:
    data = MemorySource()
    data.add({"__name__": "errors_total", "service": "orders"},
             [(T.timestamp() - 60 + i * 15, float(i)) for i in range(5)])
    counting = Counting(data)
    evaluate = evaluate_with(counting)

    high = evaluate("rate(errors_total[1m]) > 0", T)
    low = evaluate("rate(errors_total[1m]) < 1", T)
    assert counting.calls == 1 and high and low

    data.add({"__name__": "errors_total", "service": "payments"}, [(T.timestamp() + 10, 1.0)])
    later = evaluate("errors_total", datetime.fromtimestamp(T.timestamp() + 15, UTC))
    assert counting.calls == 2
    assert sorted(labels["service"] for labels, _ in later) == ["orders", "payments"]
