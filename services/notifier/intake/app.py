"""The intake HTTP app (Starlette): ``POST /intake/{producer}/{format}`` -> 202.

format is ``alertmanager``, ``grafana`` or ``generic``. A body over ``max_body`` is
refused (413) before it is read whole; every request is authenticated for its producer
(see ``auth``), parsed completely and checked against the producer's tenants, then all
its alert events are appended in one Redis script, which also refuses (409) a signed
request already seen: a bad payload is answered 400 (a foreign tenant 403) with the
reason and writes nothing. ``GET /intake/openapi.json`` describes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from schemas import AlertEvent
from services.notifier.intake.auth import authenticated, foreign_tenant, replay_id
from services.notifier.intake.config import IntakeConfig
from services.notifier.intake.openapi import openapi_json
from services.notifier.intake.parse import PARSERS, BadPayload, utcnow
from shared.streams import DATA, StreamNames, encode

log = logging.getLogger(__name__)


# KEYS: replay marker (or none), alert stream. ARGV: marker TTL, field, entries...
# Atomic: a replayed signature appends nothing; an accepted one appends everything.
_APPEND = """
if #KEYS == 2 and not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return -1
end
for i = 3, #ARGV do redis.call('XADD', KEYS[#KEYS], '*', ARGV[2], ARGV[i]) end
return #ARGV - 2
"""


class TooLarge(Exception):
    """The request body is over the configured limit."""


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it (or its announced length) passes ``limit``."""
    announced = request.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge
    return bytes(body)


def create_app(
    config: IntakeConfig,
    redis: Redis,
    names: StreamNames,
    now: Callable[[], datetime] = utcnow,
) -> Starlette:
    producers = {p.name: p for p in config.producers}
    spec = openapi_json()
    append = redis.register_script(_APPEND)

    async def intake(request: Request) -> JSONResponse:
        producer = producers.get(request.path_params["producer"])
        parse = PARSERS.get(request.path_params["format"])
        if parse is None:
            return _error(404, f"unknown format; one of {', '.join(sorted(PARSERS))}")
        try:
            body = await _read_body(request, config.max_body)
        except TooLarge:
            return _error(413, f"body over {config.max_body} bytes")
        except ClientDisconnect:
            return _error(400, "the client went away before sending the whole body")
        authorization = request.headers.get("authorization", "")
        signature = request.headers.get("x-vigil-signature", "")
        # Unknown producer and bad credentials answer alike: no probing for names.
        if producer is None or not authenticated(
            producer, authorization, signature, body, time.time(), config.max_skew
        ):
            return _error(401, "unauthenticated")
        try:
            events: list[AlertEvent] = parse(body, producer, now())
        except BadPayload as exc:
            return _error(400, str(exc))
        if not events:
            return _error(400, "no alerts in the payload")
        if (reason := foreign_tenant(producer, events)) is not None:
            return _error(403, reason)
        mac = replay_id(signature) if producer.hmac_secret else ""
        return await store(events, names.key(f"intake:seen:{producer.name}:{mac}") if mac else "")

    async def store(events: list[AlertEvent], marker: str) -> JSONResponse:
        """Append the events, unless ``marker`` (a signed request's) was already set."""
        entries = [encode(event)[DATA] for event in events]
        keys = [marker, names.alerts] if marker else [names.alerts]
        try:
            appended = await append(keys, [2 * config.max_skew + 1, DATA, *entries])
        except RedisError as exc:  # the script never ran: nothing written, the producer retries
            log.warning("intake: Redis unavailable (%s)", type(exc).__name__)
            return _error(503, "alert stream unavailable; retry later")
        if appended == -1:
            return _error(409, "this signed request was already accepted (a replay)")
        log.info("intake: %d alert(s) from %s", len(events), events[0].source)
        return JSONResponse(
            {"accepted": len(events), "event_ids": [e.event_id for e in events]}, status_code=202
        )

    async def openapi(_: Request) -> Response:
        return Response(spec, media_type="application/json")

    return Starlette(
        routes=[
            Route("/intake/openapi.json", openapi, methods=["GET"]),
            Route("/intake/{producer}/{format}", intake, methods=["POST"]),
        ],
    )
