"""Opening a proxy's driver, and what each engine's own check refuses before it starts."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

import opsplane.drivers.traffic as traffic_package
from opsplane.config.models import Proxy
from opsplane.drivers.traffic import Backend, ProxyConfigInvalid, ProxyError, Route, open_traffic
from opsplane.drivers.traffic.haproxy import HaproxyTraffic
from opsplane.drivers.traffic.nginx import NginxTraffic


def test_the_public_surface() -> None:
    assert sorted(traffic_package.__all__) == [
        "Applied", "Backend", "ProxyConfigInvalid", "ProxyError", "Route", "RouteInvalid", "Split",
        "TrafficDriver", "open_traffic", "split_weights"]


def test_each_engine_has_its_driver(tmp_path: Path) -> None:
    assert isinstance(open_traffic("edge", Proxy(engine="nginx"), directory=tmp_path), NginxTraffic)
    assert isinstance(open_traffic("edge", Proxy(engine="haproxy"), directory=tmp_path), HaproxyTraffic)


def test_a_proxy_opsplane_does_not_run_is_not_driven(tmp_path: Path) -> None:
    with pytest.raises(ProxyError, match="proxy edge is not managed by opsplane"):
        open_traffic("edge", Proxy(engine="haproxy", managed=False), directory=tmp_path)


def test_a_binary_that_is_not_there_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProxyError, match="the nginx program '/opt/none/nginx' .* is not an executable"):
        open_traffic("edge", Proxy(engine="nginx", binary="/opt/none/nginx"), directory=tmp_path)


def test_an_admin_socket_path_too_long_for_a_unix_socket_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProxyError, match="longer than the 97 bytes"):
        open_traffic("edge", Proxy(engine="haproxy"), directory=tmp_path / ("d" * 120))


@pytest.mark.parametrize(("engine", "config", "said"), [
    ("nginx", "nginx.conf", 'invalid IPv6 address in "[::zz]:8000" of the "listen" directive'),
    ("haproxy", "haproxy.cfg", "'bind' : invalid address: '[::zz]'"),
])
def test_what_the_engine_refuses_at_prepare_leaves_the_configuration_in_place(
        tmp_path: Path, engine: str, config: str, said: str) -> None:
    driver = open_traffic("edge", Proxy.model_validate({"engine": engine}), directory=tmp_path)
    backend = Backend("catalog.0", "127.0.0.1", 9001, 1, "v1")
    driver.prepare([Route("catalog", "127.0.0.1", 8000, (backend,))])
    in_place = (tmp_path / config).read_text()

    with pytest.raises(ProxyConfigInvalid) as refused:
        driver.prepare([Route("catalog", "::zz", 8000, (backend,))])

    assert said in refused.value.output
    assert f"{config}.rejected" in str(refused.value)
    assert (tmp_path / config).read_text() == in_place


def test_haproxy_takes_an_admin_socket_path_of_97_bytes_and_opsplane_refuses_98(tmp_path: Path) -> None:
    """HAProxy binds to PATH.PID.tmp before renaming it, so it allows 97 bytes, not 107."""
    sockets = Path(tempfile.mkdtemp(prefix="op-", dir="/tmp"))
    try:
        longest = str(sockets / ("s" * (97 - len(str(sockets)) - 1)))
        assert len(longest.encode()) == 97
        driver = open_traffic("edge", Proxy(engine="haproxy", admin_socket=longest), directory=tmp_path)
        backend = Backend("catalog.0", "127.0.0.1", 9001, 1, "v1")
        driver.prepare([Route("catalog", "127.0.0.1", 8000, (backend,))])  # haproxy -c accepts it
        with pytest.raises(ProxyError, match="longer than the 97 bytes"):
            open_traffic("edge", Proxy(engine="haproxy", admin_socket=longest + "s"), directory=tmp_path)
    finally:
        shutil.rmtree(sockets)
