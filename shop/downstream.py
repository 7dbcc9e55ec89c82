"""Calls to the other shop services over one shared, keep-alive httpx client."""

from __future__ import annotations

import httpx

from shop.db import DependencyUnavailable
from shop.faults import FaultInjector


class Downstreams:
    """The base URLs of the services this one calls, and the client that calls them."""

    def __init__(self, urls: dict[str, str], faults: FaultInjector, *, timeout: float = 10.0) -> None:
        self.urls = urls
        self._faults = faults
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=2.0),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30),
            # Only loopback or configured addresses: never an environment proxy.
            trust_env=False,
        )

    async def request(
        self, service: str, method: str, path: str, *, content: bytes | None = None,
        params: bytes | str | None = None, headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """The answer of `service` to one request; DependencyUnavailable when it cannot be had."""
        if self._faults.is_out(service):
            raise DependencyUnavailable(service, "outage injected by fault")
        url = self.urls[service] + path
        if params:
            url += "?" + (params.decode("latin-1") if isinstance(params, bytes) else params)
        try:
            return await self.client.request(
                method, url, content=content, headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            raise DependencyUnavailable(service, f"timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise DependencyUnavailable(service, f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self.client.aclose()
