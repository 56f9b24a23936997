"""The intake's OpenAPI 3.1 description, generated from the payload Structs it decodes, so
the document cannot drift from the code. Served at ``GET /intake/openapi.json``."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from services.notifier.intake.parse import AmPayload, GenericPayload

_REF = "#/components/schemas/{name}"
_ERRORS = {
    "400": "invalid JSON or payload; nothing was written",
    "401": "unknown producer, bad credential, or a signature outside the time window",
    "403": "an alert for a tenant this producer may not post for; nothing was written",
    "409": "a signed request already accepted (a replay); nothing was written",
    "413": "body over max_body bytes",
    "503": "the alert stream is unavailable; nothing was written, retry later",
}


class Accepted(msgspec.Struct, kw_only=True):
    accepted: int
    event_ids: list[str]


class Error(msgspec.Struct, kw_only=True):
    error: str


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(name=ref)}}}


def _operation(fmt: str, payload: str, summary: str) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "202": {
            "description": "every alert was appended to the alert stream",
            "content": _json("Accepted"),
        }
    }
    responses |= {
        code: {"description": d, "content": _json("Error")} for code, d in _ERRORS.items()
    }
    return {
        "post": {
            "operationId": f"post_{fmt}",
            "summary": summary,
            "parameters": [
                {
                    "name": "producer",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
                }
            ],
            "requestBody": {"required": True, "content": _json(payload)},
            "responses": responses,
            "security": [{"bearer": []}, {"signature": []}],
        }
    }


def openapi() -> dict[str, Any]:
    (_, components) = msgspec.json.schema_components(
        [AmPayload, GenericPayload, Accepted, Error], ref_template=_REF
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Vigil alert intake", "version": "1"},
        "paths": {
            "/intake/{producer}/alertmanager": _operation(
                "alertmanager", "AmPayload", "an Alertmanager webhook body (version 4)"
            ),
            "/intake/{producer}/grafana": _operation(
                "grafana", "AmPayload", "a Grafana alerting webhook body"
            ),
            "/intake/{producer}/generic": _operation(
                "generic", "GenericPayload", "Vigil's generic JSON alerts"
            ),
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "signature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-vigil-signature",
                    "description": 't=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>',
                },
            },
        },
    }


@functools.cache
def openapi_json() -> bytes:
    return msgspec.json.encode(openapi())
