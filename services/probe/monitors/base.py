"""What every monitor type shares: its config base, its outcome, its context and Protocol."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import aiohttp
import certifi
import httpx
from redis.asyncio import Redis

from schemas import MetricSample, Status
from shared.configbase import ConfigStruct, Seconds
from shared.streams import StreamNames

# Header names whose values are credentials: never echoed in a result.
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key", "api-key")


class CheckConfig(ConfigStruct, frozen=True, kw_only=True):
    """Fields every check has, whatever its type."""

    name: str
    tenant: str
    service: str
    tier: str = "core"
    interval: Seconds | None = None
    timeout: Seconds = Seconds(10)

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.name}"

    @property
    def kind(self) -> str:
        """The monitor type: the ``type`` tag this check was written with."""
        return str(self.__struct_config__.tag)

    def secrets(self) -> list[str]:
        """Values in this check that are credentials, so results can be scrubbed of them.

        Passwords inside URLs/DSNs, credential headers and any field named like a secret.
        """
        found: list[str] = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, str):
                if any(w in name for w in ("password", "token", "secret")) and value:
                    found.append(value)
                if "://" in value and (password := _url_password(value)):
                    found.append(password)
            elif isinstance(value, dict):
                found += [
                    str(v) for k, v in value.items() if str(k).lower() in SECRET_HEADERS and v
                ]
        return found


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def require_url(url: str, schemes: tuple[str, ...], field: str = "url") -> None:
    """Refuse a URL without one of ``schemes`` or a host; "field: reason" names the field."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from exc
    if parts.scheme not in schemes or not (host or parts.scheme == "unix"):
        shown = parts._replace(netloc=parts.hostname or "").geturl()  # never echo a password
        raise ValueError(f"{field}: expected a {'/'.join(schemes)} URL, got {shown!r}")


@dataclass(slots=True)
class Outcome:
    """What one run of a check found; ``samples`` go to the metrics stream."""

    status: Status
    details: dict[str, Any] = field(default_factory=dict)
    samples: list[MetricSample] = field(default_factory=list)


def failed(status: Status, exc: BaseException, what: str = "") -> Outcome:
    """An outcome for an exception, its message bounded so a huge one cannot bloat a result."""
    prefix = f"{what}: " if what else ""
    return Outcome(status, {"error": f"{prefix}{type(exc).__name__}: {exc}"[:500]})


class HttpClients:
    """The probe's HTTP clients, made on first use inside the running loop.

    The ``http`` monitor, the hot path, uses aiohttp: measured here at about five
    times httpx's rate (one httpx client slows down as its pool grows, upstream
    encode/httpx#3215, and sharding over several did not help). The low-volume
    monitors (Prometheus, status page, MCP) use one httpx client.
    """

    def __init__(
        self, connections: int = 1024, per_host: int = 128, user_agent: str = "vigil-probe"
    ) -> None:
        # Per host too: a few hung targets must not take every connection.
        self.connections, self.per_host = connections, per_host
        self.headers = {"user-agent": user_agent}
        self._sessions: dict[bool, aiohttp.ClientSession] = {}
        self._httpx: httpx.AsyncClient | None = None

    def session(self, verify: bool = True) -> aiohttp.ClientSession:
        """An aiohttp session; ``verify=False`` accepts any certificate (and still reads it)."""
        session = self._sessions.get(verify)
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=self.connections,
                limit_per_host=self.per_host,
                ssl=_tls_context(verify),
                ttl_dns_cache=60,
            )
            session = aiohttp.ClientSession(
                connector=connector, headers=self.headers, auto_decompress=True
            )
            self._sessions[verify] = session
        return session

    def client(self) -> httpx.AsyncClient:
        if self._httpx is None:
            self._httpx = httpx.AsyncClient(verify=_tls_context(True), headers=self.headers)
        return self._httpx

    async def aclose(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        if self._httpx is not None:
            await self._httpx.aclose()
            self._httpx = None


def _tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    if not verify:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


@dataclass(slots=True)
class ProbeContext:
    """Long-lived clients that monitors share inside one probe process."""

    redis: Redis
    names: StreamNames
    http: HttpClients = field(default_factory=HttpClients)

    async def aclose(self) -> None:
        await self.http.aclose()


class Monitor(Protocol):
    """A monitor type: its name, its config Struct and how to run one check."""

    type: ClassVar[str]
    description: ClassVar[str]

    async def run(self, check: Any, ctx: ProbeContext) -> Outcome: ...


async def read_bounded(response: httpx.Response, limit: int) -> bytes | None:
    """A streamed body, or None past ``limit`` bytes: a huge body cannot exhaust memory."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
