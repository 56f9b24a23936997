"""The intake HTTP app (Starlette): ``POST /intake/{producer}/{format}`` -> 202.

format is ``alertmanager``, ``grafana`` or ``generic``. Every request is
authenticated for its producer (constant-time comparisons), parsed completely,
then all its alert events are appended in one MULTI: a bad payload is answered
400 with the reason and writes nothing.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from datetime import datetime

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from schemas import AlertEvent
from services.notifier.channels.webhook import sign
from services.notifier.intake.config import IntakeConfig, Producer
from services.notifier.intake.parse import PARSERS, BadPayload, utcnow
from shared.streams import StreamNames, encode

log = logging.getLogger(__name__)


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def authenticated(producer: Producer, request: Request, body: bytes, max_skew: int) -> bool:
    if producer.token is not None:
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {producer.token}".encode())
    assert producer.hmac_secret is not None
    header = request.headers.get("x-vigil-signature", "")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        stamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(time.time() - stamp) > max_skew:
        return False
    return hmac.compare_digest(header.encode(), sign(producer.hmac_secret, stamp, body).encode())


def create_app(
    config: IntakeConfig,
    redis: Redis,
    names: StreamNames,
    now: Callable[[], datetime] = utcnow,
) -> Starlette:
    producers = {p.name: p for p in config.producers}

    async def intake(request: Request) -> JSONResponse:
        producer = producers.get(request.path_params["producer"])
        parse = PARSERS.get(request.path_params["format"])
        if parse is None:
            return _error(404, f"unknown format; one of {', '.join(sorted(PARSERS))}")
        body = await request.body()
        # Unknown producer and bad credentials answer alike: no probing for names.
        if producer is None or not authenticated(producer, request, body, config.max_skew):
            return _error(401, "unauthenticated")
        if len(body) > config.max_body:
            return _error(413, f"body over {config.max_body} bytes")
        try:
            events: list[AlertEvent] = parse(body, producer, now())
        except BadPayload as exc:
            return _error(400, str(exc))
        if not events:
            return _error(400, "no alerts in the payload")
        pipe = redis.pipeline(transaction=True)
        for event in events:
            pipe.xadd(names.alerts, encode(event))
        await pipe.execute()
        log.info("intake: %d alert(s) from %s", len(events), producer.name)
        return JSONResponse(
            {"accepted": len(events), "event_ids": [e.event_id for e in events]}, status_code=202
        )

    return Starlette(
        routes=[Route("/intake/{producer}/{format}", intake, methods=["POST"])],
    )
