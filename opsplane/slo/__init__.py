"""Service level objectives: SLIs recorded as they go, error budgets, burn-rate alerts, the
deploy freeze of a spent budget, reports and OpenSLO (docs/slo.md)."""

# The SLO models are a section of the inventory and use its value types (and the alerts'
# severities). Loading the inventory package first means `import opsplane.slo.models` on its
# own finds opsplane.config complete instead of half-imported.
import opsplane.config.models  # noqa: F401
