"""Alert grouping (Alertmanager's group_by / group_wait / group_interval / repeat_interval).

State lives in Redis so any notifier worker can flush any group:

- ``{p}:group:{gk}``     hash fingerprint -> latest AlertEvent JSON of that alert
- ``{p}:groupmeta:{gk}`` hash route, dirty, last_sent_ms, version, interval_ms, repeat_ms
- ``{p}:groups``         sorted set gk -> when the group is next due (ms)

Adding an alert is queued on the consumer's transaction, so it lands with the
XACK. A Lua script claims due groups atomically (re-scoring them one interval
ahead, so two workers never flush the same group), snapshots their alerts and
drops the resolved ones it is about to announce. A group is announced when it
changed since the last message, or when ``repeat_interval`` has passed; the
message's event id is (group, version), so the idempotency record makes a
re-run of one flush send nothing twice. All keys share the ``{prefix}`` hash tag.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from schemas import AlertEvent, stable_id
from services.notifier.routing import Route, field_value
from shared.streams import StreamNames

GROUP_SOURCE = "vigil-group"  # summaries carry this source and are never re-grouped
SHOWN = 50  # alerts listed in one summary message
_RANK = {"critical": 0, "warning": 1, "info": 2}

_CLAIM = """
local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local now = tonumber(ARGV[1])
for _, gk in ipairs(due) do
  local gkey = ARGV[3] .. 'group:' .. gk
  local mkey = ARGV[3] .. 'groupmeta:' .. gk
  local meta = redis.call('HGETALL', mkey)
  local m = {}
  for i = 1, #meta, 2 do m[meta[i]] = meta[i + 1] end
  local entries = redis.call('HGETALL', gkey)
  if #entries == 0 then
    redis.call('DEL', gkey, mkey)
    redis.call('ZREM', KEYS[1], gk)
  else
    redis.call('ZADD', KEYS[1], now + tonumber(m['interval_ms'] or 0), gk)
    local last = tonumber(m['last_sent_ms'] or 0)
    if m['dirty'] == '1' or now - last >= tonumber(m['repeat_ms'] or 0) then
      local version = redis.call('HINCRBY', mkey, 'version', 1)
      redis.call('HSET', mkey, 'dirty', '0', 'last_sent_ms', now)
      local group = {gk, m['route'] or '0', tostring(version)}
      for i = 1, #entries, 2 do
        table.insert(group, entries[i + 1])
        if cjson.decode(entries[i + 1])['state'] == 'resolved' then
          redis.call('HDEL', gkey, entries[i])
        end
      end
      table.insert(out, group)
    end
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class Flush:
    """One group to announce now."""

    key: str
    route: int
    version: int
    alerts: list[AlertEvent]


class Groups:
    def __init__(self, redis: Redis, names: StreamNames) -> None:
        self.redis, self.names = redis, names
        self._claim = redis.register_script(_CLAIM)
        self._decoder = msgspec.json.Decoder(AlertEvent)

    def key_of(self, index: int, route: Route, alert: AlertEvent) -> str:
        values = "\x1f".join(field_value(alert, name) for name in route.group_by)
        return f"{index}:{hashlib.sha256(values.encode()).hexdigest()[:20]}"

    def add(self, pipe: Pipeline, index: int, route: Route, alert: AlertEvent, now: float) -> None:
        """Queue ``alert`` into its group on ``pipe`` (the consumer's transaction)."""
        gk = self.key_of(index, route, alert)
        pipe.hset(self.names.key(f"group:{gk}"), alert.fingerprint, msgspec.json.encode(alert))
        pipe.hset(
            self.names.key(f"groupmeta:{gk}"),
            mapping={
                "route": index,
                "dirty": 1,
                "interval_ms": int(route.group_interval * 1000),
                "repeat_ms": int(route.repeat_interval * 1000),
            },
        )
        pipe.zadd(self.names.key("groups"), {gk: int((now + route.group_wait) * 1000)}, nx=True)

    async def claim(self, now: float, limit: int = 100) -> list[Flush]:
        """Due groups that must be announced now (claimed by this worker)."""
        rows = await self._claim(
            keys=[self.names.key("groups")],
            args=[int(now * 1000), limit, self.names.key("")],
        )
        return [
            Flush(
                row[0].decode(),
                int(row[1]),
                int(row[2]),
                [self._decoder.decode(body) for body in row[3:]],
            )
            for row in rows
        ]


def _same(values: list[str], fallback: str) -> str:
    return values[0] if len(set(values)) == 1 else fallback


def summary(flush: Flush, route: Route) -> AlertEvent:
    """The one alert event that announces a whole group."""
    alerts = sorted(flush.alerts, key=lambda a: (a.state != "firing", _RANK[a.severity], a.title))
    firing = [a for a in alerts if a.state == "firing"]
    resolved = [a for a in alerts if a.state == "resolved"]
    labels = {name: field_value(alerts[0], name) for name in route.group_by}
    title = f"{len(firing)} firing" + (f", {len(resolved)} resolved" if resolved else "")
    if labels:
        title += ": " + ", ".join(f"{k}={v}" for k, v in labels.items())
    lines = [f"[{a.state.upper()}] {a.tenant}/{a.service}: {a.title}" for a in alerts[:SHOWN]]
    if len(alerts) > SHOWN:
        lines.append(f"... and {len(alerts) - SHOWN} more")
    ended = [a.ended_at for a in resolved if a.ended_at]
    return AlertEvent(
        event_id=stable_id("group", flush.key, str(flush.version)),
        fingerprint=f"group:{flush.key}",
        rule=_same([a.rule for a in alerts], "group"),
        tenant=_same([a.tenant for a in alerts], "*"),
        service=_same([a.service for a in alerts], "*"),
        severity=alerts[0].severity,
        state="firing" if firing else "resolved",
        title=title,
        message="\n".join(lines),
        labels=labels,
        started_at=min(a.started_at for a in alerts),
        ended_at=None if firing or not ended else max(ended),
        source=GROUP_SOURCE,
    )
