"""TLS certificate check: a handshake, days until expiry, and the hostname match."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from datetime import UTC, datetime
from typing import Annotated, ClassVar

import msgspec
from cryptography import x509

from services.probe.monitors.base import CheckConfig, Outcome, ProbeContext, failed


class TlsCheck(CheckConfig, frozen=True, kw_only=True, tag="tls", tag_field="type"):
    host: str
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 443
    server_name: str | None = None  # SNI and the name to match; default: host
    warn_days: float = 21.0  # fewer days left than this: degraded
    min_days: float = 7.0  # fewer days left than this: unhealthy
    ca_file: str | None = None  # trust this CA bundle instead of the system's


class TlsMonitor:
    type: ClassVar[str] = "tls"
    description: ClassVar[str] = "TLS certificate: days to expiry, hostname match, chain trust"

    async def run(self, check: TlsCheck, ctx: ProbeContext) -> Outcome:
        name = check.server_name or check.host
        trust_error = None
        try:
            try:
                der = await _peer_cert(check, name, verify=True)
            except ssl.SSLCertVerificationError as exc:
                # Read the certificate anyway, so expiry and name are still reported.
                trust_error = f"untrusted certificate: {exc.verify_message}"
                der = await _peer_cert(check, name, verify=False)
        except (OSError, ssl.SSLError) as exc:
            return failed("unhealthy", exc, "handshake failed")
        return judge(check, x509.load_der_x509_certificate(der), name, trust_error)


async def _peer_cert(check: TlsCheck, name: str, verify: bool) -> bytes:
    context = ssl.create_default_context(cafile=check.ca_file)
    context.check_hostname = False  # matched by hand below, with a precise message
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection(
        check.host, check.port, ssl=context, server_hostname=name
    )
    try:
        der: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    return der


def judge(check: TlsCheck, cert: x509.Certificate, name: str, trust_error: str | None) -> Outcome:
    days = (cert.not_valid_after_utc - datetime.now(UTC)).total_seconds() / 86400
    details: dict[str, object] = {
        "days_left": round(days, 2),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "subject": cert.subject.rfc4514_string()[:200],
    }
    if not _matches(cert, name):
        return Outcome("unhealthy", details | {"error": f"certificate does not match {name!r}"})
    if trust_error:
        return Outcome("unhealthy", details | {"error": trust_error})
    if days < check.min_days:
        return Outcome("unhealthy", details | {"error": f"expires in {days:.1f} days"})
    if days < check.warn_days:
        return Outcome("degraded", details | {"error": f"expires in {days:.1f} days"})
    return Outcome("healthy", details)


def _matches(cert: x509.Certificate, name: str) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    name = name.lower()
    wildcard = "*." + name.split(".", 1)[1] if "." in name else None
    return name in names or name in ips or (wildcard is not None and wildcard in names)
