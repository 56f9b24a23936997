"""Outbound HTTP from the notifier must not reach link-local or cloud metadata addresses.

Webhook URLs are written by tenants; one pointing at ``169.254.169.254`` would read the
host's cloud credentials (SSRF). The check runs in the HTTP transport on the addresses a
connection is about to use, after DNS resolution, so a name that resolves (or re-resolves,
DNS rebinding) to a forbidden address is refused, and so are IP literals and redirects.
An operator can allow specific networks or names in the ``egress`` config section.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

import aiohttp

from shared.configbase import ConfigStruct
from shared.errors import ChannelError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Link-local (which holds AWS/GCP/Azure metadata and ECS credentials) and the metadata
# addresses outside it: AWS over IPv6, Alibaba Cloud.
FORBIDDEN: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
)
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

    def __post_init__(self) -> None:
        for entry in self.allow:
            if not entry or (_network(entry) is None and not _is_name(entry)):
                raise ValueError(f"allow: not a network or host name: {entry!r}")


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


class GuardedConnector(aiohttp.TCPConnector):
    """A TCP connector that drops forbidden addresses from every resolution (names and
    IP literals alike) and refuses the connection when none is left."""

    def __init__(self, policy: EgressPolicy, **kw: Any) -> None:
        super().__init__(**kw)
        self.policy = policy

    async def _resolve_host(self, host: str, port: int, traces: Sequence[Any] | None = None) -> Any:
        # aiohttp connects only to what this returns: checking here is checking the
        # address actually used (no second lookup an attacker's DNS could answer differently).
        results = await super()._resolve_host(host, port, traces=traces)
        kept = [r for r in results if not refused(host, r["host"], self.policy)]
        if not kept:
            raise EgressRefused(host, results[0]["host"] if results else host)
        return kept


def guarded_session(policy: EgressPolicy, **connector: Any) -> aiohttp.ClientSession:
    """The notifier's HTTP session: every channel's requests go through the guard."""
    return aiohttp.ClientSession(connector=GuardedConnector(policy, **connector))
