"""The configurations the drivers write, read as text: what each directive is there for."""

from __future__ import annotations

from pathlib import Path

from opsplane.drivers.traffic import Backend, Route
from opsplane.drivers.traffic.haproxy_plan import render_haproxy
from opsplane.drivers.traffic.nginx import render_nginx


def canary() -> Route:
    return Route("catalog", "127.0.0.1", 8000, (
        Backend("catalog.0", "127.0.0.1", 9001, 19, "v1"),
        Backend("catalog@v2", "::1", 9002, 1, "v2"),
        Backend("catalog@v0", "127.0.0.1", 9003, 0, "v0"),
    ))


def test_nginx_weights_each_backend_and_sends_none_to_weight_0() -> None:
    text = render_nginx([canary()], directory=Path("/srv/edge"), proxy_name="edge")

    assert "    upstream catalog {\n" in text
    assert "server 127.0.0.1:9001 weight=19;  # catalog.0 v1" in text
    assert "server [::1]:9002 weight=1;  # catalog@v2 v2" in text
    assert "server 127.0.0.1:9003 down;  # catalog@v0 v0" in text
    assert "listen 127.0.0.1:8000;" in text and "proxy_pass http://catalog;" in text
    assert "proxy_next_upstream error timeout http_502 http_503;" in text
    assert "non_idempotent" not in text
    assert "keepalive 16;" in text and 'proxy_set_header Connection "";' in text
    assert 'pid "/srv/edge/nginx.pid";' in text and "daemon off;" in text and "master_process on;" in text


def test_nginx_answers_502_for_a_route_without_backends_and_health_on_its_own_port() -> None:
    empty = Route("orders", "127.0.0.1", 8001)

    text = render_nginx([empty], directory=Path("/srv/edge"), proxy_name="edge", health=("127.0.0.1", 8080))

    assert "upstream orders" not in text
    assert "listen 127.0.0.1:8001;\n        location / { return 502; }" in text
    assert "listen 127.0.0.1:8080;" in text and "location = /health" in text


def test_haproxy_has_a_slot_for_each_backend_and_the_rest_free() -> None:
    route = canary()
    text = render_haproxy([(route, ["127.0.0.1", "::1", "127.0.0.1"])],
                          admin_socket=Path("/srv/edge/admin.sock"), proxy_name="edge", slots=32)

    assert 'stats socket "/srv/edge/admin.sock" mode 600 level admin' in text
    assert "frontend catalog:127.0.0.1:8000\n    bind 127.0.0.1:8000\n" in text
    assert "backend catalog:127.0.0.1:8000\n" in text
    assert "server slot1 127.0.0.1:9001 weight 19" in text
    assert "server slot2 [::1]:9002 weight 1" in text
    assert "server slot3 127.0.0.1:9003 weight 0" in text
    assert "server-template slot 4-32 127.0.0.1:1 disabled" in text
    assert "option redispatch 1" in text and "retry-on conn-failure empty-response" in text
    assert "http-request disable-l7-retry if !METH_GET !METH_OPTIONS" in text
