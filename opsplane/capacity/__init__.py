"""Performance and capacity (docs/capacity.md): the KPIs against their targets, load tests, and the
recorded use of each resource with its forecast and scaling advice."""
