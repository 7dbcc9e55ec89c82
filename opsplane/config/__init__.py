"""The inventory (`opsplane.yaml`): models, loader with located errors, JSON Schema.

`load`, `loads` and `Inventory` are imported when first asked for, so that a domain's models
can use `opsplane.config.types` while `opsplane.config.models` gathers those same models."""

from typing import Any

__all__ = ["Inventory", "load", "loads"]


def __getattr__(name: str) -> Any:
    if name in ("load", "loads"):
        from opsplane.config import loader

        return getattr(loader, name)
    if name == "Inventory":
        from opsplane.config.models import Inventory

        return Inventory
    raise AttributeError(f"module 'opsplane.config' has no attribute {name!r}")
