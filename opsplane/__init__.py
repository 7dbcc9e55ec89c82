"""opsplane: the operations manual of an e-commerce platform, as software."""

__version__ = "0.1.0"
