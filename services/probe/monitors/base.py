"""What every monitor type shares: its config base, its outcome, its context and Protocol."""

from __future__ import annotations

import ssl
import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

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
    """Several httpx clients, each check pinned to one by its key.

    One httpx client gets slower as its pool grows (upstream encode/httpx#3215), so
    the probe shards its requests over ``shards`` small clients; a second set, made
    on first use, skips TLS verification for checks that ask for it.
    """

    def __init__(
        self, shards: int = 8, connections: int = 16, user_agent: str = "vigil-probe"
    ) -> None:
        self.shards, self.connections = shards, connections
        self.headers = {"user-agent": user_agent}
        self._sets: dict[bool, list[httpx.AsyncClient]] = {}

    def get(self, key: str, verify: bool = True) -> httpx.AsyncClient:
        clients = self._sets.get(verify)
        if clients is None:
            limits = httpx.Limits(
                max_connections=self.connections, max_keepalive_connections=self.connections
            )
            # One TLS context for all of them: loading the CA bundle takes tens of ms.
            tls = ssl.create_default_context(cafile=certifi.where())
            if not verify:
                tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
            clients = [
                httpx.AsyncClient(verify=tls, limits=limits, headers=self.headers)
                for _ in range(self.shards)
            ]
            self._sets[verify] = clients
        return clients[zlib.crc32(key.encode()) % len(clients)]

    async def aclose(self) -> None:
        for clients in self._sets.values():
            for client in clients:
                await client.aclose()
        self._sets.clear()


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
