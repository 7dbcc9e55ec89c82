"""Routes, backends and splits as values: what a proxy can be asked, and how a split is read."""

from __future__ import annotations

import pytest

from opsplane.drivers.traffic import Backend, Route, RouteInvalid, Split
from opsplane.drivers.traffic.base import check_routes, hostport


def backend(name: str = "catalog.0", port: int = 9001, weight: int = 1, host: str = "127.0.0.1") -> Backend:
    return Backend(name=name, host=host, port=port, weight=weight, version="v1")


@pytest.mark.parametrize(("fields", "message"), [
    ({"weight": 257}, "weight 257 is out of range; expected an integer from 0 .* to 256"),
    ({"weight": -1}, "weight -1 is out of range"),
    ({"weight": True}, "weight True is out of range"),
    ({"port": 0}, "port 0 is out of range; expected 1 to 65535"),
    ({"host": "10.0.0.1; include /etc/passwd"}, "cannot go into a proxy's configuration"),
    ({"host": "a}b"}, "cannot go into a proxy's configuration"),
    ({"name": "two words"}, "backend name 'two words' is not valid"),
    ({"version": "v1 beta"}, "version 'v1 beta' is not valid"),
])
def test_a_backend_a_proxy_could_not_carry_is_refused_by_name(fields: dict[str, object],
                                                              message: str) -> None:
    values: dict[str, object] = {"name": "catalog.0", "host": "127.0.0.1", "port": 9001, "weight": 1,
                                 "version": "v1", **fields}
    with pytest.raises(RouteInvalid, match=message):
        Backend(**values)  # type: ignore[arg-type]


def test_a_route_names_each_backend_and_address_once() -> None:
    with pytest.raises(RouteInvalid, match="backend names must be unique; catalog.0 appear"):
        Route("catalog", "127.0.0.1", 8000, (backend(), backend(port=9002)))
    with pytest.raises(RouteInvalid, match="two backends share the address 127.0.0.1:9001"):
        Route("catalog", "127.0.0.1", 8000, (backend(), backend(name="catalog.1")))
    with pytest.raises(RouteInvalid, match="route service 'Catalog' is not valid"):
        Route("Catalog", "127.0.0.1", 8000)


def test_routes_of_one_proxy_have_a_service_and_an_address_each() -> None:
    catalog = Route("catalog", "127.0.0.1", 8000)
    with pytest.raises(RouteInvalid, match="routes catalog and orders both listen on 127.0.0.1:8000"):
        check_routes([catalog, Route("orders", "127.0.0.1", 8000)])
    with pytest.raises(RouteInvalid, match="service catalog has two routes"):
        check_routes([catalog, Route("catalog", "127.0.0.1", 8001)])
    assert check_routes([catalog]) == (catalog,)


def test_an_ipv6_address_is_bracketed_before_its_port() -> None:
    assert hostport("::1", 80) == "[::1]:80"
    assert hostport("127.0.0.1", 80) == "127.0.0.1:80"


def test_a_split_shares_the_answers_that_named_a_release() -> None:
    split = Split(requests=100, versions={"v1": 57, "v2": 3}, failures=30, unlabelled=10,
                  reasons=("HTTP 502",))

    assert split.answered == 60
    assert split.share("v2") == 0.05
    assert split.share("v3") == 0.0
    assert Split(requests=5, failures=5).share("v1") == 0.0
    assert split.describe() == ("100 requests: v1 57 (95.0%), v2 3 (5.0%); 10 without a version header; "
                                "30 failed (HTTP 502)")
