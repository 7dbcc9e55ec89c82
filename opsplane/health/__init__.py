"""Health: check states, dependency impact, the health command and the probe scheduler."""
