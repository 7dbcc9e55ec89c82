"""Game days: a fault injected on purpose, and how fast the platform noticed, paged, recovered
and resolved."""
