"""Outbound HTTP from the notifier must not reach link-local or cloud metadata addresses.

Webhook URLs are written by tenants; one pointing at ``169.254.169.254`` would read the
host's cloud credentials (SSRF). The check runs on the addresses a connection is
about to use, after DNS resolution, so a name that resolves (or re-resolves,
DNS rebinding) to a forbidden address is refused, and so are IP literals; redirects are
not followed.
An operator can allow specific networks or names in the ``egress`` config section.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import re
import socket
import time
from dataclasses import dataclass
from datetime import UTC, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import ConnectError
from pyreqwest.http import Url

from shared.configbase import ConfigStruct
from shared.errors import ChannelError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Link-local (which holds AWS/GCP/Azure metadata and ECS credentials) and the metadata
# addresses outside it: AWS over IPv6, Alibaba Cloud.
FORBIDDEN: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
)
Destination = tuple[str, str, int, bool]  # scheme, host, port, host is an IP literal
DNS_TTL_S = 10.0  # how long a checked resolution is used, as aiohttp's DNS cache
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)


class EgressPolicy(ConfigStruct, frozen=True, kw_only=True):
    """``allow``: networks (``169.254.10.0/24``, ``fe80::1``) or host names an operator
    lets the notifier reach although they are link-local or metadata addresses."""

    allow: list[str] = []
    ca_file: str | None = None  # extra CA certificates (PEM) trusted for HTTPS

    def __post_init__(self) -> None:
        for entry in self.allow:
            if not entry or (_network(entry) is None and not _is_name(entry)):
                raise ValueError(f"allow: not a network or host name: {entry!r}")
        if self.ca_file is not None:
            self.extra_roots()  # refused at start, with the field, not at the first send

    def extra_roots(self) -> list[bytes]:
        """The PEM certificates of ``ca_file``, each on its own (none without one)."""
        if self.ca_file is None:
            return []
        try:
            text = Path(self.ca_file).read_bytes()
        except OSError as exc:
            raise ValueError(f"ca_file: cannot read {self.ca_file}: {exc.strerror}") from exc
        found = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)
        if not found:
            raise ValueError(f"ca_file: no PEM certificate in {self.ca_file}")
        return found


class EgressRefused(ChannelError):
    """An outbound connection would reach a forbidden address; never worth a retry."""

    def __init__(self, host: str, address: str) -> None:
        where = host if host == address else f"{host} ({address})"
        super().__init__(
            f"egress refused: {where} is a link-local or metadata address "
            "(an operator may allow it under egress.allow)",
            permanent=True,
        )


def _network(entry: str) -> Network | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


def _is_name(entry: str) -> bool:
    return len(entry) <= 253 and _NAME.fullmatch(entry) is not None


def refused(host: str, address: str, policy: EgressPolicy) -> bool:
    """Whether connecting to ``address`` (resolved from ``host``) is forbidden."""
    name = host.rstrip(".").lower()
    allowed_names = {a.rstrip(".").lower() for a in policy.allow if _network(a) is None}
    if name in allowed_names:
        return False
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    allowed = [n for a in policy.allow if (n := _network(a)) is not None]
    if any(ip.version == n.version and ip in n for n in allowed):
        return False
    return name in METADATA_NAMES or any(ip.version == n.version and ip in n for n in FORBIDDEN)


@dataclass(slots=True)
class _Pinned:
    client: Client
    address: str
    checked: float  # loop time of the last resolution that still allowed ``address``
    refusing: bool = False  # a connection to ``address`` failed: try another one


class GuardedClient:
    """The notifier's HTTP client: pyreqwest (HTTP/1.1 and TLS in Rust, off the GIL,
    about half aiohttp's CPU per request; see docs/performance.md).

    Names are resolved here, not by the HTTP library: forbidden addresses are dropped
    from every resolution (names and IP literals alike), and each destination gets a
    client pinned to one allowed address, so the library connects only to an address
    that was checked (no second lookup an attacker's DNS could answer differently).
    Resolutions are redone every ``dns_ttl`` seconds like aiohttp's cache; a client is
    replaced only when its address is no longer among the allowed answers, or refused a
    connection while the name has other allowed addresses. Redirects
    are not followed and the environment's proxies are not used: either would reach
    hosts the guard never saw.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        limit: int = 100,
        resolver: AbstractResolver | None = None,
        dns_ttl: float = DNS_TTL_S,
    ) -> None:
        self.policy, self.limit, self.dns_ttl = policy, limit, dns_ttl
        self.roots = policy.extra_roots()  # read once, not per pinned client
        self.resolver = resolver or DefaultResolver()
        self._pinned: dict[Destination, _Pinned] = {}
        self._locks: dict[Destination, asyncio.Lock] = {}

    async def __aenter__(self) -> GuardedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        clients = [p.client for p in self._pinned.values()]
        self._pinned = {}
        for client in clients:
            await client.close()
        await self.resolver.close()

    async def request(
        self,
        method: str,
        url: str,
        timeout: float,
        content: bytes | None = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request and read its response; returns its status and Retry-After. Raises
        ``EgressRefused`` before any connection to a forbidden address, ``TimeoutError``
        (pyreqwest's timeouts derive from it), ``OSError`` when the name does not resolve
        and pyreqwest's ``RequestError``."""
        client = await self._client(url, timeout)
        builder = client.request(method, url).timeout(_timeout(timeout))
        if headers:
            builder = builder.headers(headers)
        if form is not None:
            builder = builder.form(form)
        elif content is not None:
            builder = builder.body_bytes(content)
        try:
            response = await builder.build().send()  # reads the whole (small) body
        except ConnectError:
            self._connect_failed(url, client)
            raise
        return Answer(response.status, retry_after(response.headers.get("retry-after")))

    def _connect_failed(self, url: str, client: Client) -> None:
        """Resolve again before the next send and prefer another allowed address, as
        aiohttp tried a name's addresses in turn."""
        pinned = self._pinned.get(_destination(url))
        if pinned is not None and pinned.client is client:
            pinned.refusing, pinned.checked = True, -math.inf

    async def _client(self, url: str, timeout: float) -> Client:
        key = _destination(url)
        pinned = self._pinned.get(key)
        if pinned is None or asyncio.get_running_loop().time() - pinned.checked >= self.dns_ttl:
            # Within the send's timeout, as aiohttp's covered its DNS lookup; one
            # resolution per destination at a time, not one per waiting send.
            async with asyncio.timeout(timeout), self._locks.setdefault(key, asyncio.Lock()):
                pinned = await self._pin(key)
        return pinned.client

    async def _pin(self, key: Destination) -> _Pinned:
        now = asyncio.get_running_loop().time()
        pinned = self._pinned.get(key)
        if pinned is not None and now - pinned.checked < self.dns_ttl:
            return pinned  # pinned by another send while this one waited
        _, host, port, literal = key
        if literal:
            addresses = [host]
        else:
            results = await self.resolver.resolve(host, port, family=socket.AF_UNSPEC)
            addresses = [r["host"] for r in results]
        kept = [a for a in addresses if not refused(host, a, self.policy)]
        if not kept:
            raise EgressRefused(host, addresses[0] if addresses else host)
        address = kept[0]
        if pinned is not None and pinned.address in kept:
            if not pinned.refusing or len(kept) == 1:
                pinned.checked, pinned.refusing = now, False
                return pinned
            address = kept[(kept.index(pinned.address) + 1) % len(kept)]
        builder = (
            ClientBuilder()
            .max_connections(self.limit)
            .follow_redirects(False)
            .no_proxy()
            .error_for_status(False)
        )
        for root in self.roots:  # in addition to the system's trusted roots
            builder = builder.add_root_certificate_pem(root)
        if not literal:
            builder = builder.resolve(host, address, port)
        # A replaced client is dropped, not closed: sends still running on it keep it alive.
        self._pinned[key] = pinned = _Pinned(builder.build(), address, now)
        return pinned


@lru_cache(maxsize=1024)
def _destination(url: str) -> Destination:
    """(scheme, host, port, whether the host is an IP literal) of a URL, parsed by the
    HTTP library itself: the guard checks the very host it would connect to (IDNA,
    decimal or hex IPv4 forms and percent-escapes normalised alike)."""
    parsed = Url(url)
    if (domain := parsed.domain) is not None:
        return parsed.scheme, domain, parsed.port_or_known_default or 0, False
    address = (parsed.host_str or "").strip("[]")
    return parsed.scheme, address, parsed.port_or_known_default or 0, True


class Answer(NamedTuple):
    status: int
    retry_after: float | None  # seconds, from a Retry-After header


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header's delay in seconds: delta-seconds or an HTTP date (RFC 9110);
    None when absent or unreadable (the back-off then decides alone)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@lru_cache(maxsize=64)
def _timeout(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def guarded_session(policy: EgressPolicy, **options: Any) -> GuardedClient:
    """The notifier's HTTP client: every channel's requests go through the guard."""
    return GuardedClient(policy, **options)
