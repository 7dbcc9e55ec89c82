"""Deployments: strategies, canary analysis, windows and freezes, and the record of every deploy."""
