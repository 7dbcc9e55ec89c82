"""Dependency audit: the known vulnerabilities of each service's Python and npm packages, from an
OSV-compatible API, rated by CVSS, kept as findings with the manual's fix times (docs/dependencies.md)."""
