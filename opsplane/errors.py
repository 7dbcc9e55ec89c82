"""One exception tree for everything opsplane reports to a person.

Each error carries a message that says what happened, to what, and what to do next,
and an exit code that the CLI uses (3: configuration or usage, 2: an operation failed).
"""

from __future__ import annotations

from dataclasses import dataclass


class OpsplaneError(Exception):
    """Base of every error opsplane raises on purpose."""

    exit_code = 2


class UsageError(OpsplaneError):
    """The command line or a request asked for something that cannot be done."""

    exit_code = 3


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration file, located as precisely as the file allows."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class ConfigError(OpsplaneError):
    """The inventory is invalid; nothing was started."""

    exit_code = 3

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        count = len(problems)
        head = f"{count} problem{'s' if count != 1 else ''} in configuration"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in problems))


class SecretError(OpsplaneError):
    """A secret reference could not be resolved (missing variable or unreadable file)."""

    exit_code = 3


class StoreError(OpsplaneError):
    """The store could not be opened or migrated."""


class StorePlaceError(StoreError):
    """The store's place cannot hold it (a directory opsplane may not write, ...): a set-up
    problem, not a failed operation."""

    exit_code = 3


class AuthError(OpsplaneError):
    """A token is missing, unknown, revoked or lacks the role an action needs."""

    exit_code = 3
