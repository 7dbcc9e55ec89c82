"""The demo's inventory without its servers, for the tests of the shipped runbooks: what
`opsplane demo` writes, with PostgreSQL and Redis on ports nothing listens on."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from opsplane.config.loader import loads
from opsplane.demo.stack import SHOP_SERVICES, DemoStack

# The manuals' runbooks opsplane ships (opsplane/runbooks/builtin/).
SHIPPED = ("cache-issues", "database-failure-recovery", "database-issues", "deployment-rollback", "disk-full",
           "high-cpu", "high-error-rate", "high-memory", "high-response-time", "one-server-down",
           "security-incident")


def demo_inventory(base: Path) -> Any:
    """The demo inventory (gateway, catalog, orders, payments, traffic, postgres-main, redis,
    localhost), as `opsplane demo` writes it, loaded."""
    stack = DemoStack(base, backups=False, proxy=False)
    stack.postgres = SimpleNamespace(port=1, user="shop", password="x", url=lambda db: "postgresql:///x")
    stack.redis = SimpleNamespace(port=2, url="redis://127.0.0.1:2/0")
    stack.ports = {name: 10_000 + i for i, name in enumerate((*SHOP_SERVICES, "edge"))}
    return loads(stack.inventory_yaml(3), str(base / "opsplane.yaml"))
