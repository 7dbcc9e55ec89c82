"""A schemathesis check of our own, loaded by test_openapi.py's run: a request sent with a
token of the role the document names for its route is never refused for its role."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.check
def declared_role_suffices(ctx: Any, response: Any, case: Any) -> bool | None:
    # 403 is the answer to a role too low; the run sends each route its own role's token
    if response.status_code == 403 and "x-opsplane-role" in case.operation.definition.raw:
        raise AssertionError(f"{case.operation.label} refused the role its document names: "
                             f"{response.text[:200]}")
    return None
