"""Exports of the inventory to the formats of other tools (Prometheus and Alertmanager)."""
