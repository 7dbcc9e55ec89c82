"""Reading metrics pages: the Prometheus text format and OpenMetrics, into labelled samples."""

from __future__ import annotations

import math

import pytest

from opsplane.metrics.exposition import ExpositionError, parse_samples

PAGE = r'''# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/api/products",status="200"} 1027
http_requests_total{status="500",route="/api/checkout",method="POST"} 3 1700000000000
http_request_duration_seconds_bucket{le="0.1"} 5
http_request_duration_seconds_bucket{le="+Inf"} 7
process_start_time_seconds 1.7e9
odd{path="C:\\tmp",quote="say \"hi\"",nl="a\nb",empty=""} NaN
up_down +Inf
low -Inf
trailing{a="1",} 2
# EOF
'''


def test_every_sample_with_sorted_labels_and_its_value() -> None:
    samples = dict(parse_samples(PAGE))
    assert samples[(("__name__", "http_requests_total"), ("method", "GET"), ("route", "/api/products"),
                    ("status", "200"))] == 1027
    # label order on the line does not matter; a timestamp after the value is not the value
    assert samples[(("__name__", "http_requests_total"), ("method", "POST"), ("route", "/api/checkout"),
                    ("status", "500"))] == 3
    assert samples[(("__name__", "http_request_duration_seconds_bucket"), ("le", "+Inf"))] == 7
    assert samples[(("__name__", "process_start_time_seconds"),)] == 1.7e9
    assert samples[(("__name__", "up_down"),)] == math.inf
    assert samples[(("__name__", "low"),)] == -math.inf
    assert samples[(("__name__", "trailing"), ("a", "1"))] == 2
    [odd] = [v for k, v in samples.items() if k[0] == ("__name__", "odd")]
    assert math.isnan(odd)
    odd_labels = dict(next(k for k in samples if k[0] == ("__name__", "odd")))
    assert odd_labels == {"__name__": "odd", "path": "C:\\tmp", "quote": 'say "hi"', "nl": "a\nb",
                          "empty": ""}
    assert len(samples) == 9


@pytest.mark.parametrize(("line", "message"), [
    ("http_requests_total", "expected a metric name and a value"),
    ("9lives 1", "expected a metric name and a value"),
    ('x{a="1" 2', "cannot read a label at column 3"),
    ('x{a=1} 2', "cannot read a label at column 3"),
    ('x{a="1",a="2"} 2', "label a appears twice"),
    ("x twelve", "'twelve' is not a number"),
    ('x{a="1"}', "expected a value after the labels"),
    ("<html><body>Not found</body></html>", "expected a metric name and a value"),
])
def test_a_line_that_is_not_a_sample_is_named_with_its_number(line: str, message: str) -> None:
    with pytest.raises(ExpositionError) as raised:
        list(parse_samples(f"# TYPE x gauge\ngood 1\n{line}\n"))
    assert str(raised.value).startswith(f"line 3: {message}")
