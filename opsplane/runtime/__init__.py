"""Running the inventory's components as supervised processes: restart decisions, log
analysis and the `opsplane up/down/ps/logs/restart/stats/scale` commands. The drivers that do
the running live in `opsplane.drivers.runtime`."""
