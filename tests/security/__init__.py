"""Security: signals, access review, secrets."""
