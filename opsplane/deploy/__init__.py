"""Deployments: whether a canary may go on (analysis) and when a deploy may start (windows)."""
