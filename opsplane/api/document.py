"""What the OpenAPI document says about each route beyond what FastAPI infers from its
signature: the role it needs, and the refusals every route of its kind can answer.

`mount` applies `contract` to every route it adds, so a route declares only its own
refusals (404 for an unknown incident, 409 for a change its state forbids); the ones that
follow from its kind are added here: 401 and 403 for a route that checks a role, 422 for one
that takes parameters or a body (the routes in Prometheus's shape refuse those with their
400 instead), 400 for one that takes a JSON body. What the route declares itself wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from opsplane.api.errors import PROMETHEUS_SHAPED, declare
from opsplane.auth.deps import RoleGuard

ROLE_EXTENSION = "x-opsplane-role"  # the least role a route admits, for tools and tests


@dataclass(frozen=True)
class Contract:
    """What `mount` passes to `add_api_route` on top of the route's own settings."""

    responses: dict[int | str, dict[str, Any]]
    openapi_extra: dict[str, Any] | None
    description: str | None = None


def role_of(route: APIRoute) -> RoleGuard | None:
    """The route's RoleGuard, if it declares one."""
    guards = [d.call for d in route.dependant.dependencies if isinstance(d.call, RoleGuard)]
    return guards[0] if guards else None


def contract(route: APIRoute, path: str) -> Contract:
    """The responses, extensions and description of `route`, served at `path`, as the document
    states them."""
    dependant = route.dependant
    takes_parameters = any((dependant.query_params, dependant.path_params, dependant.header_params,
                            dependant.cookie_params, route.body_field))
    codes: list[int] = []
    if route.body_field is not None:
        codes.append(400)
    guard = role_of(route)
    if guard is not None:
        codes += [401, 403]
    if takes_parameters and path not in PROMETHEUS_SHAPED:
        codes.append(422)
    responses: dict[int | str, dict[str, Any]] = {**declare(*codes), **(route.responses or {})}
    extra = dict(route.openapi_extra or {})
    description = route.description
    if guard is None:
        return Contract(responses, extra or None, description)
    role = guard.role.value
    extra[ROLE_EXTENSION] = role
    needs = f"Needs a token with the {role} role or a higher one."
    return Contract(responses, extra, f"{description}\n\n{needs}" if description else needs)


def mount(app: FastAPI, router: APIRouter, prefix: str) -> None:
    """Add a domain router's routes to the app itself, so `app.routes` lists every route
    as a plain APIRoute (the role test walks them), each with what the OpenAPI document says
    about it: its role and the refusals of its kind (`api.document.contract`)."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"unexpected route type {type(route).__name__} in {router}")
        stated = contract(route, prefix + route.path)
        app.router.add_api_route(
            prefix + route.path, route.endpoint, methods=sorted(route.methods or ()),
            name=route.name, include_in_schema=route.include_in_schema, tags=route.tags,
            summary=route.summary, description=stated.description,
            response_model=route.response_model, status_code=route.status_code,
            response_class=route.response_class, responses=stated.responses,
            response_description=route.response_description, openapi_extra=stated.openapi_extra,
        )
