"""DNS, TLS, SMTP and WebSocket monitors against real local servers of their kind."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import trustme
from aiosmtpd.controller import Controller
from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSServer
from redis.asyncio import Redis
from websockets.asyncio.server import ServerConnection, serve

from services.probe.monitors import ProbeContext
from services.probe.monitors.dns import DnsCheck
from services.probe.monitors.smtp import SmtpCheck
from services.probe.monitors.tls import TlsCheck
from services.probe.monitors.websocket import WebsocketCheck
from services.probe.service import run_check
from shared.localservers import free_port
from shared.streams import StreamNames

COMMON = {"name": "c", "tenant": "t", "service": "s"}


@pytest_asyncio.fixture
async def ctx(redis: Redis, names: StreamNames) -> AsyncIterator[ProbeContext]:
    context = ProbeContext(redis, names)
    yield context
    await context.aclose()


class Zone(BaseResolver):  # type: ignore[misc]
    """shop.test -> 10.0.0.7; anything else NXDOMAIN."""

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        if name == "shop.test" and request.q.qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("10.0.0.7"), ttl=60))
        elif name != "shop.test":
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    port = free_port()
    server = DNSServer(Zone(), address="127.0.0.1", port=port)
    server.start_thread()
    yield port
    server.stop()


def dns(port: int, **kw: object) -> DnsCheck:
    return DnsCheck(**COMMON, nameserver="127.0.0.1", port=port, **kw)  # type: ignore[arg-type]


async def test_dns(ctx: ProbeContext, dns_port: int) -> None:
    ok = await run_check(dns(dns_port, query="shop.test", expect=["10.0.0.7"]), ctx)
    wrong = await run_check(dns(dns_port, query="shop.test", expect=["10.0.0.8"]), ctx)
    nx = await run_check(dns(dns_port, query="gone.test"), ctx)
    nx_expected = await run_check(dns(dns_port, query="gone.test", expect_rcode="NXDOMAIN"), ctx)
    assert ok.status == "healthy" and ok.details["answers"] == ["10.0.0.7"]
    assert wrong.status == "unhealthy" and "10.0.0.8" in wrong.details["error"]
    assert nx.status == "unhealthy" and nx.details["rcode"] == "NXDOMAIN"
    assert nx_expected.status == "healthy"


async def test_dns_server_that_never_answers(ctx: ProbeContext) -> None:
    silent = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    port = silent[0].get_extra_info("sockname")[1]
    try:
        result = await run_check(dns(port, query="shop.test", timeout=0.3), ctx)
    finally:
        silent[0].close()
    assert result.status == "unhealthy" and result.latency_ms < 2000


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def _tls_server(ca: trustme.CA, days: float) -> asyncio.Server:
    cert = ca.issue_cert(
        "localhost", "127.0.0.1", not_after=datetime.now(UTC) + timedelta(days=days)
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)


async def test_tls_certificate(ctx: ProbeContext, ca: trustme.CA, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    results = {}
    for days in (90, 14, 3):
        server = await _tls_server(ca, days)
        port = server.sockets[0].getsockname()[1]
        async with server:
            check = TlsCheck(**COMMON, host="127.0.0.1", port=port, ca_file=str(ca_file))
            results[days] = await run_check(check, ctx)
            if days == 90:
                untrusted = await run_check(TlsCheck(**COMMON, host="127.0.0.1", port=port), ctx)
                other = await run_check(
                    TlsCheck(
                        **COMMON,
                        host="127.0.0.1",
                        port=port,
                        server_name="other.test",
                        ca_file=str(ca_file),
                    ),
                    ctx,
                )
    assert results[90].status == "healthy" and 89 < results[90].details["days_left"] < 91
    assert results[14].status == "degraded" and "expires in" in results[14].details["error"]
    assert results[3].status == "unhealthy"
    assert untrusted.status == "unhealthy" and "untrusted" in untrusted.details["error"]
    assert other.status == "unhealthy" and "does not match 'other.test'" in other.details["error"]


async def test_tls_against_a_plain_tcp_server(ctx: ProbeContext) -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 400 Bad\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await run_check(TlsCheck(**COMMON, host="127.0.0.1", port=port), ctx)
    assert result.status == "unhealthy" and "handshake failed" in result.details["error"]


class _Sink:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


async def test_smtp(ctx: ProbeContext) -> None:
    port = free_port()
    controller = Controller(_Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        ok = await run_check(SmtpCheck(**COMMON, host="127.0.0.1", port=port), ctx)
    finally:
        controller.stop()
    assert ok.status == "healthy" and "SMTP" in ok.details["banner"]
    assert "8BITMIME" in ok.details["extensions"]
    down = await run_check(SmtpCheck(**COMMON, host="127.0.0.1", port=free_port()), ctx)
    assert down.status == "unhealthy" and "connect failed" in down.details["error"]


@pytest.mark.parametrize(
    "greeting, word",
    [
        (b"554 go away\r\n", "banner 554"),
        (b"\x00\xffgarbage\r\n", "not an SMTP reply"),
        (b"220-" + b"x" * 5000 + b"\r\n", "bad SMTP dialogue"),
        (b"", "bad SMTP dialogue"),
    ],
)
async def test_smtp_bad_servers(ctx: ProbeContext, greeting: bytes, word: str) -> None:
    async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(bad, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await run_check(SmtpCheck(**COMMON, host="127.0.0.1", port=port), ctx)
    assert result.status == "unhealthy" and word in result.details["error"], result.details


async def test_websocket(ctx: ProbeContext) -> None:
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        ok = await run_check(WebsocketCheck(**COMMON, url=f"ws://127.0.0.1:{port}/"), ctx)
    assert ok.status == "healthy" and ok.details["ping_ms"] >= 0
    down = await run_check(WebsocketCheck(**COMMON, url=f"ws://127.0.0.1:{free_port()}/"), ctx)
    assert down.status == "unhealthy"


async def test_websocket_against_plain_http(ctx: ProbeContext) -> None:
    from tests.support.asgi import Reply, Routes
    from tests.support.asgi import serve as serve_http

    async with serve_http(Routes({"/": Reply(200)})) as url:
        result = await run_check(WebsocketCheck(**COMMON, url=url.replace("http", "ws") + "/"), ctx)
    assert result.status == "unhealthy", result.details
