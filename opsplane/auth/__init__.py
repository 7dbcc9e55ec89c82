"""API tokens and roles: viewer < responder < operator < admin."""
