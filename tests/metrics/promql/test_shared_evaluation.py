"""Expressions evaluated together share their subexpressions (InstantEvaluation) and give
exactly what each gives alone: every expression of the differential suite, in one shared
evaluation per instant, against `instant` over the same samples."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import pytest

from opsplane.metrics.promql import (
    InstantEvaluation,
    Labels,
    Matcher,
    MemorySource,
    PromQLError,
    Sample,
    Value,
    instant,
    parse,
)
from tests.metrics.differential.compare import Result, differences, from_engine
from tests.metrics.differential.datasets import all_series
from tests.metrics.differential.expressions import ALL
from tests.metrics.differential.test_against_prometheus import INSTANTS

SOURCE = MemorySource(all_series())


def _result(evaluate: Callable[[str], Value], expr: str) -> Result:
    try:
        return from_engine(evaluate(expr))
    except PromQLError as exc:
        return Result("error", error=f"{exc} [{exc.construct}]")


@pytest.mark.parametrize("at", INSTANTS)
def test_every_expression_shares_subexpressions_without_changing_its_result(at: float) -> None:
    shared = InstantEvaluation(SOURCE, at)
    problems = []
    # Twice over: the second pass reads every value from what the first one computed.
    for expr in [*ALL, *reversed(ALL)]:
        alone = _result(lambda e: instant(e, SOURCE, at), expr)
        together = _result(shared.value, expr)
        problems += [f"{expr!r}: {p}" for p in differences(alone, together)]
    assert not problems, "\n".join(problems)


class Counting(MemorySource):
    """A source that counts the selections it answers."""

    selects = 0

    def select(self, matchers: Sequence[Matcher], start: float,
               end: float) -> Iterable[tuple[Labels, Sequence[Sample]]]:
        self.selects += 1
        return super().select(matchers, start, end)


def test_a_shared_subexpression_is_computed_once() -> None:
    source = Counting(all_series())
    shared = InstantEvaluation(source, INSTANTS[3])
    ratio = 'sum by (service) (rate(http_requests_total{status=~"5.."}[5m]))'
    for expr in (f"{ratio} > 0.01", f"{ratio} > 0.05", f"{ratio} / 2"):
        assert shared.value(parse(expr)) == instant(expr, SOURCE, INSTANTS[3])
    assert source.selects == 1
