"""Who may post: a producer's bearer token or its HMAC signature, and the tenants it may
post for.

Every secret comparison goes through ``hmac.compare_digest`` (constant time). A signed
request carries its own timestamp inside the signed text; one older or newer than
``max_skew`` seconds is refused, so a captured request cannot be replayed later, and the
app remembers each accepted signature for the window, so it cannot be replayed sooner.
"""

from __future__ import annotations

import hmac
import re

from schemas import AlertEvent
from services.notifier.channels.webhook import sign
from services.notifier.intake.config import Producer

# At most 12 digits: a Unix time until the year 33658, and never a number too big for a float.
_STAMP = re.compile(r"[0-9]{1,12}")


def _signature_parts(header: str) -> dict[str, str]:
    parts = (p.strip().split("=", 1) for p in header.split(","))
    return {p[0]: p[1] for p in parts if len(p) == 2}


def authenticated(
    producer: Producer, authorization: str, signature: str, body: bytes, now: float, max_skew: int
) -> bool:
    """Whether the request's credential is this producer's (and, if signed, fresh)."""
    if producer.token is not None:
        expected = f"Bearer {producer.token}".encode()
        return hmac.compare_digest(authorization.encode(errors="replace"), expected)
    assert producer.hmac_secret is not None
    parts = _signature_parts(signature)
    stamp = parts.get("t", "")
    if not _STAMP.fullmatch(stamp) or abs(now - int(stamp)) > max_skew:
        return False
    expected = sign(producer.hmac_secret, int(stamp), body).encode()
    given = f"t={int(stamp)},v1={parts.get('v1', '')}".encode(errors="replace")
    return hmac.compare_digest(given, expected)


def replay_id(signature: str) -> str:
    """What identifies a signed request for replay detection: its MAC (empty if unsigned)."""
    return _signature_parts(signature).get("v1", "")[:64]


def foreign_tenant(producer: Producer, events: list[AlertEvent]) -> str | None:
    """Why the events may not be posted by this producer (a tenant it is not bound to),
    or None when every event is for one of its tenants."""
    allowed = {producer.tenant, *producer.tenants}
    for i, event in enumerate(events):
        if event.tenant not in allowed:
            return (
                f"alerts[{i}]: tenant {event.tenant!r} is not one this producer may post for "
                f"({', '.join(sorted(allowed))})"
            )
    return None
