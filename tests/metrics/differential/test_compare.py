"""The comparison behind the differential suite: what it accepts as equal and how it names a
difference. A lenient comparison would let the whole suite pass for the wrong reasons."""

from __future__ import annotations

import math

from opsplane.metrics.promql import InstantVector, Matrix, Scalar
from tests.metrics.differential.compare import Result, differences, from_engine, from_prometheus

API = (("job", "api"),)
WEB = (("job", "web"),)


def _vector(**values: float) -> dict:
    return {"resultType": "vector",
            "result": [{"metric": {"job": job}, "value": [1.0, repr(v)]} for job, v in values.items()]}


def test_values_within_1e9_relative_error_agree_and_beyond_it_do_not() -> None:
    one = from_prometheus(_vector(api=1.0))
    assert differences(one, from_engine(InstantVector([(API, 1.0 + 5e-10)]))) == []
    [problem] = differences(one, from_engine(InstantVector([(API, 1.0 + 2e-9)])))
    assert 'job="api"' in problem and "Prometheus 1.0" in problem


def test_nan_equals_nan_and_infinities_only_themselves() -> None:
    nan = from_prometheus({"resultType": "vector",
                           "result": [{"metric": {"job": "api"}, "value": [1, "NaN"]}]})
    assert differences(nan, from_engine(InstantVector([(API, math.nan)]))) == []
    assert differences(nan, from_engine(InstantVector([(API, 0.0)])))
    inf = from_prometheus({"resultType": "scalar", "result": [1, "+Inf"]})
    assert differences(inf, from_engine(Scalar(math.inf))) == []
    assert differences(inf, from_engine(Scalar(-math.inf)))


def test_missing_and_extra_series_are_named() -> None:
    found = differences(from_prometheus(_vector(api=1.0, web=2.0)), from_engine(InstantVector([(API, 1.0)])))
    assert found == ['1 series only in Prometheus: {job="web"}=2.0']
    found = differences(from_prometheus(_vector(api=1.0)),
                        from_engine(InstantVector([(API, 1.0), (WEB, 3.0)])))
    assert found == ['1 series only in opsplane: {job="web"}=3.0']


def test_both_empty_agree_whatever_their_kind() -> None:
    empty_matrix = from_prometheus({"resultType": "matrix", "result": []})
    assert differences(empty_matrix, from_engine(InstantVector([]))) == []


def test_a_scalar_is_not_a_one_element_vector() -> None:
    found = differences(from_prometheus({"resultType": "scalar", "result": [1, "2"]}),
                        from_engine(InstantVector([((), 2.0)])))
    assert found == ["Prometheus returned a scalar, opsplane a vector"]


def test_range_points_are_compared_one_by_one() -> None:
    expected = from_prometheus({"resultType": "matrix", "result": [
        {"metric": {"job": "api"}, "values": [[10, "1"], [20, "2"], [30, "3"]]}]})
    same = from_engine(Matrix([(API, [(10.0, 1.0), (20.0, 2.0), (30.0, 3.0)])]))
    assert differences(expected, same) == []
    [problem] = differences(expected, from_engine(Matrix([(API, [(10.0, 1.0), (20.0, 2.5)])])))
    assert "points only in Prometheus at 30.000" in problem
    assert "t=20.000: Prometheus 2.0, opsplane 2.5" in problem


def test_errors_agree_only_with_errors() -> None:
    refused = Result("error", error="many-to-many matching not allowed")
    assert differences(refused, Result("error", error="duplicate series")) == []
    [problem] = differences(refused, from_engine(InstantVector([(API, 1.0)])))
    assert problem.startswith("Prometheus refused it")
    [problem] = differences(from_prometheus(_vector(api=1.0)), Result("error", error="unsupported: subquery"))
    assert "opsplane failed (unsupported: subquery)" in problem
