"""Passwords of the servers the tests start; read by checks through env: references."""

PG_PASSWORD = "pg-test-secret"
