"""Security: sign-in and traffic signals from the services' logs, the quarterly access review
of API tokens and dashboard sessions, and secrets kept out of the inventory, logs and answers
(docs/security.md)."""
