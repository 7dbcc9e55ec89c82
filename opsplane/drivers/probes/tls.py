"""TLS certificate probe: how long until the served certificate expires.

The handshake deliberately skips verification: an untrusted or mismatched certificate still
has an expiry date worth watching, and trust is the HTTP check's business (verify_tls).
"""

from __future__ import annotations

import asyncio
import math
import ssl

from cryptography import x509
from cryptography.x509.oid import NameOID

from opsplane.clock import Clock, SystemClock
from opsplane.config.models import TlsCheck
from opsplane.drivers.probes.base import ProbeFailed
from opsplane.drivers.probes.resolve import Resolver, default_resolver
from opsplane.health.models import Metric, ProbeResult, State, Threshold
from opsplane.health.targets import CheckTarget, host_port
from opsplane.timefmt import span

DAY = 86400.0


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class TlsProbe:
    """Fetches the peer certificate of host:port (SNI `server_name`) and judges its expiry."""

    def __init__(
        self,
        host: str,
        port: int,
        check: TlsCheck,
        *,
        clock: Clock | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.host = host
        self.resolver = resolver or default_resolver()
        self.port = port
        self.check = check
        self.server_name = check.server_name or host
        self.clock = clock or SystemClock()
        self._context = _unverified_context()
        self._expiry = Threshold(check.warning_days, check.critical_days, higher_is_worse=False)

    @property
    def address(self) -> str:
        return host_port(self.host, self.port)

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()  # sends none

    @classmethod
    def for_target(
        cls, target: CheckTarget, *, clock: Clock | None = None, resolver: Resolver | None = None
    ) -> TlsProbe:
        if not isinstance(target.check, TlsCheck):
            raise TypeError(f"{target.id} is not a tls check")
        return cls(target.host, target.port or 443, target.check, clock=clock, resolver=resolver)

    async def probe(self) -> ProbeResult:
        """The certificate's state by the time left; metrics days_left, not_after, subject,
        issuer."""
        der = await self.fetch_certificate()
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise ProbeFailed(f"the server sent a certificate that cannot be read: {exc}",
                              State.UNKNOWN) from None
        return self.judge(certificate)

    async def fetch_certificate(self) -> bytes:
        """The server's leaf certificate, DER-encoded."""
        # An IP address is not a valid SNI name; Python omits SNI for it, as it should.
        transport, _ = await self.resolver.connect(
            asyncio.Protocol, self.host, self.port, ssl=self._context,
            server_hostname=self.server_name,
        )
        try:
            ssl_object = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        finally:
            transport.abort()  # we only wanted the handshake
        if not der:
            raise ProbeFailed("the server completed the TLS handshake without a certificate")
        return bytes(der)

    def judge(self, certificate: x509.Certificate) -> ProbeResult:
        """The state of `certificate` at the clock's now.

        One rule for every figure: time is counted in complete units toward zero, so 4 days
        23 hours left reads "4d 23h" with `days_left` 4, and expiry 1 day and 31 seconds ago
        reads "1d 0h ago" with `days_left` -1. The thresholds compare the exact time left:
        `critical_days: 5` is critical from the instant fewer than 5 x 24 hours remain. The
        reason gives the expiry time itself (UTC) as well.
        """
        not_after = certificate.not_valid_after_utc
        seconds = (not_after - self.clock.now()).total_seconds()
        days_left = math.trunc(seconds / DAY)
        name = common_name(certificate.subject) or self.server_name
        when = not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
        metrics: dict[str, Metric] = {
            "days_left": days_left,
            "not_after": not_after.isoformat(),
            "subject": certificate.subject.rfc4514_string(),
            "issuer": certificate.issuer.rfc4514_string(),
        }
        how_long = span(abs(math.trunc(seconds)))
        if seconds <= 0:
            return ProbeResult(State.CRITICAL,
                               f"certificate expired {how_long} ago, at {when} (CN {name})",
                               metrics=metrics)
        state = self._expiry.judge(seconds / DAY)
        reason = f"certificate expires in {how_long}, at {when} (CN {name})"
        return ProbeResult(state, reason, metrics=metrics)


def common_name(name: x509.Name) -> str | None:
    """The first CN of `name`, or None."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None

