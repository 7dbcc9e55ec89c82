"""Calls to the other shop services, over one keep-alive connection pool per service."""

from __future__ import annotations

from shop.db import DependencyUnavailable
from shop.faults import FaultInjector
from shop.httpclient import HttpAnswer, HttpClientError, HttpTimeout, Origin


class Downstreams:
    """The services this one calls, each with its pool of kept-alive connections."""

    def __init__(self, urls: dict[str, str], faults: FaultInjector, *, timeout: float = 10.0) -> None:
        self.urls = urls
        self._faults = faults
        self._timeout = timeout
        self._origins = {name: Origin(url, max_connections=512) for name, url in urls.items()}

    async def request(
        self, service: str, method: str, path: str, *, content: bytes | None = None,
        params: bytes | str | None = None, headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpAnswer:
        """The answer of `service` to one request; DependencyUnavailable when it cannot be had."""
        if self._faults.is_out(service):
            raise DependencyUnavailable(service, "outage injected by fault")
        if params:
            path += "?" + (params.decode("latin-1") if isinstance(params, bytes) else params)
        try:
            return await self._origins[service].request(
                method, path, content=content, headers=headers,
                timeout=self._timeout if timeout is None else timeout,
            )
        except HttpTimeout as exc:
            raise DependencyUnavailable(service, str(exc)) from exc
        except HttpClientError as exc:
            raise DependencyUnavailable(service, str(exc)) from exc

    async def close(self) -> None:
        for origin in self._origins.values():
            origin.close()
