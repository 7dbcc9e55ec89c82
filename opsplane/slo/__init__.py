"""Service level objectives: SLIs recorded as they go, error budgets, burn-rate alerts, the
deploy freeze of a spent budget, reports and OpenSLO (docs/slo.md)."""
