"""Tenant-configured webhooks cannot reach link-local or metadata addresses.

Names resolve through a local dnslib server that the system resolver does not know:
a delivery to one of its names can only succeed through the address the guard checked
and pinned (the HTTP library connects in Rust, out of reach of Python's audit hooks).
A refused send fails with the guard's own error, which it raises before any client
exists for the destination, so no connection is even attempted.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import dns.asyncresolver
import dns.resolver
import pytest
import pytest_asyncio
from aiohttp.abc import AbstractResolver, ResolveResult
from dnslib import AAAA, QTYPE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSServer

from services.notifier.channels import SendContext
from services.notifier.channels.webhook import WebhookConfig
from services.notifier.delivery import deliver
from shared.config import load_config
from shared.configbase import Seconds
from shared.errors import ConfigError
from shared.netguard import EgressPolicy, GuardedClient, guarded_session, refused
from tests.support.asgi import Reply, Routes, serve
from tests.test_channels import FIRING

ZONE = {
    "metadata.evil.test": ["169.254.169.254"],
    "linklocal.evil.test": ["169.254.10.1"],
    "v6meta.evil.test": ["fd00:ec2::254"],
    "mixed.evil.test": ["169.254.169.254", "127.0.0.1"],
    "ok.test": ["127.0.0.1"],
    "two.test": ["127.0.0.2", "127.0.0.1"],  # the receiver listens on the second only
    "xn--bcher-kva.evil.test": ["127.0.0.1"],  # bücher.evil.test
    "metadata.google.internal": ["127.0.0.1"],  # refused by its name alone
}


class Zone(BaseResolver):  # type: ignore[misc]
    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        for address in ZONE.get(name, []):
            v6 = ":" in address
            if request.q.qtype == (QTYPE.AAAA if v6 else QTYPE.A):
                rtype = QTYPE.AAAA if v6 else QTYPE.A
                rdata = AAAA(address) if v6 else A(address)
                reply.add_answer(RR(request.q.qname, rtype, rdata=rdata, ttl=60))
        return reply


class LocalDns(AbstractResolver):
    """The system resolver's stand-in: asks the test's DNS server, A and AAAA."""

    def __init__(self, port: int) -> None:
        self.resolver = dns.asyncresolver.Resolver(configure=False)
        self.resolver.nameservers, self.resolver.port = ["127.0.0.1"], port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        for rtype, fam in (("A", socket.AF_INET), ("AAAA", socket.AF_INET6)):
            try:
                answer = await self.resolver.resolve(host, rtype)
            except dns.resolver.NoAnswer:
                continue
            results += [
                ResolveResult(
                    hostname=host, host=r.address, port=port, family=fam, proto=0, flags=0
                )
                for r in answer
            ]
        if not results:
            raise OSError(f"{host}: no address")
        return results

    async def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = DNSServer(Zone(), address="127.0.0.1", port=port)
    server.start_thread()
    yield port
    server.stop()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[Routes, int]]:
    routes = Routes(
        {
            "/hook": Reply(200),
            "/redirect": Reply(302, b"", {"location": "http://169.254.169.254/latest/meta-data/"}),
        }
    )
    async with serve(routes) as url:
        yield routes, int(url.rsplit(":", 1)[1])


def hook(url: str) -> WebhookConfig:
    return WebhookConfig(name="hook", url=url, max_attempts=3, backoff=Seconds(0.001))


async def send(url: str, dns_port: int, policy: EgressPolicy | None = None) -> list[Any]:
    async with guarded_session(policy or EgressPolicy(), resolver=LocalDns(dns_port)) as http:
        return await deliver(FIRING, hook(url), SendContext(http))


@pytest.mark.parametrize(
    "url",
    [
        "http://metadata.evil.test/latest/meta-data/",
        "http://linklocal.evil.test:8080/hook",
        "http://v6meta.evil.test/",
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]:8080/",
        "http://[::ffff:169.254.169.254]/",
        "http://2852039166/",  # 169.254.169.254 as one number
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://%31%36%39.254.169.254/",
        "http://metadata.google.internal:{port}/computeMetadata/v1/",
    ],
)
async def test_link_local_and_metadata_addresses_are_refused_without_a_packet(
    url: str, dns_port: int, receiver: tuple[Routes, int]
) -> None:
    routes, port = receiver
    started = time.perf_counter()
    [record] = await send(url.format(port=port), dns_port)  # permanent: no retry
    assert record.outcome == "failed"
    assert record.error.startswith("egress refused: ")
    assert "egress.allow" in record.error
    assert routes.requests == []  # metadata.google.internal points at the receiver
    assert time.perf_counter() - started < 1  # no connection attempt timing out


async def test_a_name_resolving_to_both_uses_only_the_allowed_address(
    dns_port: int, receiver: tuple[Routes, int]
) -> None:
    # The forbidden address comes first: had it been pinned, the one send would have
    # gone there (timing out) instead of reaching the receiver on 127.0.0.1.
    routes, port = receiver
    [record] = await send(f"http://mixed.evil.test:{port}/hook", dns_port)
    assert record.outcome == "delivered" and record.attempt == 1
    assert [r.path for r in routes.requests] == ["/hook"]


async def test_an_international_name_is_resolved_as_the_http_library_sends_it(
    dns_port: int, receiver: tuple[Routes, int]
) -> None:
    # Only the test's DNS server knows the punycode name: a send that got through was
    # pinned by the guard under the very name the library connects to.
    routes, port = receiver
    [record] = await send(f"http://Bücher.evil.test:{port}/hook", dns_port)
    assert record.outcome == "delivered" and len(routes.requests) == 1


async def test_a_refused_connection_moves_the_next_send_to_the_next_address(
    dns_port: int, receiver: tuple[Routes, int]
) -> None:
    routes, port = receiver
    records = await send(f"http://two.test:{port}/hook", dns_port)
    assert [(r.outcome, r.error) for r in records] == [
        ("retrying", "transport: ConnectError"),
        ("delivered", ""),
    ]
    assert len(routes.requests) == 1


async def test_a_name_rebound_to_a_metadata_address_is_refused_on_its_next_resolution(
    dns_port: int, receiver: tuple[Routes, int]
) -> None:
    routes, port = receiver
    ZONE["rebind.evil.test"] = ["127.0.0.1"]
    try:
        url = f"http://rebind.evil.test:{port}/hook"
        async with GuardedClient(EgressPolicy(), resolver=LocalDns(dns_port), dns_ttl=0) as http:
            [first] = await deliver(FIRING, hook(url), SendContext(http))
            ZONE["rebind.evil.test"] = ["169.254.169.254"]
            [second] = await deliver(FIRING, hook(url), SendContext(http))
    finally:
        del ZONE["rebind.evil.test"]
    assert first.outcome == "delivered"
    assert second.outcome == "failed" and second.error.startswith("egress refused: ")
    assert len(routes.requests) == 1


async def test_redirects_are_not_followed(dns_port: int, receiver: tuple[Routes, int]) -> None:
    # A followed redirect would reach a host the guard never checked.
    routes, port = receiver
    [record] = await send(f"http://ok.test:{port}/redirect", dns_port)
    assert record.outcome == "failed" and record.error == "HTTP 302"
    assert [r.path for r in routes.requests] == ["/redirect"]


async def test_an_operator_can_allow_a_name(dns_port: int, receiver: tuple[Routes, int]) -> None:
    routes, port = receiver
    policy = EgressPolicy(allow=["metadata.google.internal"])
    url = f"http://metadata.google.internal:{port}/hook"
    [record] = await send(url, dns_port, policy)
    assert record.outcome == "delivered" and len(routes.requests) == 1


@pytest.mark.parametrize(
    "host, address, allow, expected",
    [
        ("h", "169.254.169.254", [], True),
        ("h", "169.254.169.254", ["169.254.169.254"], False),
        ("h", "169.254.169.254", ["169.254.0.0/16"], False),
        ("h", "169.254.169.253", ["169.254.169.254/32"], True),
        ("h", "fe80::1%eth0", [], True),
        ("h", "fe80::1", ["fe80::/64"], False),
        ("h", "::ffff:169.254.169.254", [], True),
        ("h", "100.100.100.200", [], True),
        ("h", "10.0.0.1", [], False),  # private networks are the operator's business
        ("h", "127.0.0.1", [], False),
        ("h", "::1", [], False),
        ("metadata.goog.", "10.1.2.3", [], True),
        ("Metadata.Google.Internal", "10.1.2.3", ["metadata.google.internal"], False),
    ],
)
def test_the_address_rule(host: str, address: str, allow: list[str], expected: bool) -> None:
    assert refused(host, address, EgressPolicy(allow=allow)) is expected


def test_a_bad_allow_entry_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "vigil.yaml"
    path.write_text("egress:\n  allow:\n    - 169.254.0.0/16\n    - 'not a/host'\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert (error.value.file, error.value.line, error.value.field) == (str(path), 3, "egress.allow")
    assert "'not a/host'" in error.value.reason


async def test_a_name_that_does_not_resolve_is_a_retryable_transport_error(dns_port: int) -> None:
    records = await send("http://nowhere.evil.test/hook", dns_port)
    assert [(r.outcome, r.error) for r in records] == [
        ("retrying", "transport: OSError"),
        ("retrying", "transport: OSError"),
        ("failed", "transport: OSError"),
    ]


async def test_the_dns_lookup_counts_against_the_send_timeout() -> None:
    config = WebhookConfig(name="hook", url="http://ok.test/", timeout=Seconds(0.2), max_attempts=1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # never answers
        silent.bind(("127.0.0.1", 0))
        resolver = LocalDns(silent.getsockname()[1])
        started = time.perf_counter()
        async with guarded_session(EgressPolicy(), resolver=resolver) as http:
            records = await deliver(FIRING, config, SendContext(http))
    assert [(r.outcome, r.error) for r in records] == [("failed", "timeout: TimeoutError")]
    assert time.perf_counter() - started < 1.5  # the resolver alone would wait 5 s
