"""Incidents: severities, the lifecycle from trigger to resolution, status updates, the
timeline from the event log, post-mortem drafts and the incident report."""

# The incident models are a section of the inventory and use its value types. Loading the
# inventory package first means `import opsplane.incidents.models` on its own finds
# opsplane.config complete instead of half-imported.
import opsplane.config.models  # noqa: F401
