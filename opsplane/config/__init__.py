"""The inventory (`opsplane.yaml`): models, loader with located errors, JSON Schema."""

from opsplane.config.loader import load, loads
from opsplane.config.models import Inventory

__all__ = ["Inventory", "load", "loads"]
