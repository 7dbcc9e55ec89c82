"""`python -m opsplane`: the same as the `opsplane` command."""

from opsplane.cli import main

if __name__ == "__main__":
    main()
