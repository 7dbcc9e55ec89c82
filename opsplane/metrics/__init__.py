"""Metrics the control plane reads from the components it watches (Prometheus text format)."""
