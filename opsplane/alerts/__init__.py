"""Alert rules, their states, silences, inhibition and routing to receivers."""

# The alerting models are a section of the inventory and use its value types. Loading the
# inventory package first means `import opsplane.alerts.models` on its own finds
# opsplane.config complete instead of half-imported.
import opsplane.config.models  # noqa: F401
