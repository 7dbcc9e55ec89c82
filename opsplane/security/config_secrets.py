"""Literal secrets in the inventory outside its secret fields: a field that takes a secret
refuses anything but a reference already (`config/types.py` Secret); this finds the ones
written where a plain value is expected, so that `opsplane config validate` refuses them too,
with file, line and field, and exit 3.

Found: a password in a URL (`postgresql://user:pw@host/db`), a webhook URL that is itself the
credential (`hooks.slack.com/services/...`), a token in a URL's query string, a variable of a
`run` or check `env` whose name says it holds a secret (`DB_PASSWORD`, `API_TOKEN`), and a value
that looks like a key or token (a PagerDuty routing key, 32 letters and digits) in a field named
for one. Messages never repeat the value. Pure: the inventory in, (path, message) pairs out.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from opsplane.security.redact import findings

if TYPE_CHECKING:
    from opsplane.config.models import Inventory

Path = tuple[str | int, ...]
USE = "use a secret reference: env:NAME or file:PATH (secrets are never written in the configuration file)"
_REFERENCE = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/.+)$")
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|ROUTING_KEY|CREDENTIAL)",
                          re.IGNORECASE)
_KEY_FIELD = re.compile(r"(key|token|password|secret)$", re.IGNORECASE)
_KEY_LIKE = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9_+/=-]{16,}$")
# only placeholders the runtime fills in ({port}, {instance}, ...): no value of its own
_PLACEHOLDERS = re.compile(r"^(\{[a-z_]+\}[^A-Za-z0-9]*)*$")


def secret_problems(inventory: Inventory) -> list[tuple[Path, str]]:
    """Each literal secret where a plain value is written: its path and what it is."""
    data = inventory.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    found: list[tuple[Path, str]] = []
    _walk(data, (), found)
    return found


def _walk(value: Any, path: Path, found: list[tuple[Path, str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if path and path[-1] in ("env", "environment") and isinstance(item, str) and isinstance(key, str):
                if _SECRET_NAME.search(key) and not _harmless(item):
                    found.append(((*path, key), f"{key} looks like a secret written in env: keep it in "
                                  f"secret_env and {USE}"))
                    continue
            _walk(item, (*path, key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, (*path, index), found)
    elif isinstance(value, str) and not _REFERENCE.match(value):
        said = findings(value)
        if said:
            found.append((path, f"{' and '.join(said)} is written here; {USE}"))
        elif path and isinstance(path[-1], str) and _KEY_FIELD.search(path[-1]) and _KEY_LIKE.match(value):
            found.append((path, f"this looks like a literal key or token; {USE}"))


def _harmless(value: str) -> bool:
    """Empty, or only the runtime's placeholders."""
    return not value.strip() or bool(_PLACEHOLDERS.match(value))
