"""The reference shop under the process runtime, on a private PostgreSQL and Redis, set up
the way `opsplane demo` does it, for the tests that operate it end to end."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from opsplane.config.loader import load
from opsplane.demo.stack import DemoStack
from opsplane.drivers.sandbox.ports import free_port


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    stack = DemoStack(tmp_path_factory.mktemp("shop") / "demo")
    try:
        stack.start_servers()
        stack.start_shop(load(stack.write_inventory(free_port())))
        yield stack
    finally:
        stack.stop()


def set_faults(stack: DemoStack, service: str, plan: dict[str, object] | None) -> None:
    """Replace (or with None clear) the fault plan of `service` through its admin endpoint."""
    url = f"http://127.0.0.1:{stack.ports[service]}/admin/faults"
    headers = {"Authorization": f"Bearer {stack.admin_token()}"}
    answer = (httpx.delete(url, headers=headers, trust_env=False) if plan is None
              else httpx.put(url, headers=headers, json=plan, trust_env=False))
    assert answer.status_code == 200, answer.text
