"""The edges of opsplane: everything that talks to the outside world."""
