"""The evaluator shards' router: public streams in, shard streams out (see ``shards``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from typing import TYPE_CHECKING

import msgspec
from redis.exceptions import RedisError

from shared import metrics
from shared.consumer import xack_packed
from shared.redisclient import raise_if_cancelled
from shared.streams import DATA, Rejected, deadletter_fields, ensure_group

if TYPE_CHECKING:
    from services.evaluator.shards import ShardedEvaluator

log = logging.getLogger(__name__)
ROUTER_GROUP = "evaluator-router"
# Renew the router's lease and read as the router, atomically (see ``Router.read``). The
# reply is packed into one MessagePack blob (``_READ_REPLY``): decoding it with msgspec
# costs the router a fifth of what hiredis' nested lists did.
_READ = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local args = {'XREADGROUP', 'GROUP', ARGV[3], ARGV[4], 'COUNT', ARGV[5], 'STREAMS'}
for i = 2, #KEYS do args[#args + 1] = KEYS[i] end
for i = 6, #ARGV do args[#args + 1] = ARGV[i] end
return cmsgpack.pack(redis.call(unpack(args)) or {})
"""
# Append one batch's entries to a shard stream under their public ids (KEYS[1]: the shard
# stream, KEYS[2]: its owner's cursors; ARGV[1]: the entries, packed as ``_READ`` packed
# them). A refused id was routed before, unless the shard holds neither it nor its
# owner's cursor past it: then the entry came out of order and goes in under a new id,
# late rather than lost. Returns how many went in late.
_ROUTE = """
local function above(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
local cursor = redis.call('HGET', KEYS[2], KEYS[1]) or '0-0'
local late = 0
for _, entry in ipairs(cmsgpack.unpack(ARGV[1])) do
  local id, fields = entry[1], entry[2]
  local added = redis.pcall('XADD', KEYS[1], id, unpack(fields))
  if type(added) == 'table' and added.err then
    if not string.find(added.err, 'equal or smaller') then return redis.error_reply(added.err) end
    if #redis.call('XRANGE', KEYS[1], id, id) == 0 and above(id, cursor) then
      redis.call('XADD', KEYS[1], '*', unpack(fields))
      late = late + 1
    end
  end
end
return late
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def shard_of(tenant: str, shards: int) -> int:
    # crc32, not hash(): every process and every release must agree.
    return zlib.crc32(tenant.encode()) % shards


class _Routing(msgspec.Struct):
    """The one field routing reads. Not a wire type: a view of all three (each has a
    ``tenant``); the shard's owner decodes and validates the whole message."""

    tenant: str


class Entry(msgspec.Struct, array_like=True, gc=False):
    """A public stream entry as ``_READ`` packs it and ``_ROUTE`` unpacks it.

    ``fields`` (``[k1, v1, k2, v2, ...]``, ``False`` for a pending entry trimmed away
    since) stay packed: Redis' cmsgpack packs every string as a MessagePack str, which
    msgspec would decode to a Python str (failing on bytes that are not UTF-8), while
    msgspec writes bytes as bin, which cmsgpack cannot read. Kept raw, they go back to
    Redis byte for byte, and routing decodes only the 'data' field's tenant.
    """

    id: str
    fields: list[msgspec.Raw] | bool


_ROUTING = msgspec.json.Decoder(_Routing)
_STR = msgspec.msgpack.Decoder(str)
_READ_REPLY = msgspec.msgpack.Decoder(list[tuple[str, list[Entry]]])
_ENCODE = msgspec.msgpack.Encoder().encode
_DATA = msgspec.Raw(msgspec.msgpack.encode(DATA.decode()))
_STR_HEADER = {0xD9: 2, 0xDA: 3, 0xDB: 5}  # str 8/16/32; a fixstr's header is 1 byte


class Router:
    """Copies observations from the public streams to the shard streams of their tenant.

    One process routes at a time, under its own lease, and always as the same consumer
    of the router group: so each series' observations reach its shard in stream order,
    and a new router first finishes what a dead one had read but not acknowledged.

    Routing is idempotent: an entry goes to its shard stream under its public id, which
    Redis refuses if it is not above the shard stream's last id (also after a trim). A
    refusal is checked against the shard (``_ROUTE``), so a crash between routing and
    the acknowledgement neither doubles nor loses an observation.
    """

    CONSUMER = "router"

    def __init__(self, owner: ShardedEvaluator) -> None:
        self.owner = owner
        names = owner.names
        self.lease_key = names.key("evaluator:router-lease")
        self.kinds = {names.results: "results", names.metrics: "metrics", names.errors: "errors"}

    async def run(self) -> None:
        o = self.owner
        for stream in self.kinds:
            await ensure_group(o.redis, stream, ROUTER_GROUP)
        while True:
            raise_if_cancelled()
            try:
                if await o.redis.set(self.lease_key, o.member, nx=True, px=o.lease_ms):
                    await self._route_while_leased()
            except RedisError as exc:  # an outage: the lease lapses, someone retakes it
                raise_if_cancelled(exc)
                log.warning("evaluator router: %s", exc)
            await asyncio.sleep(o.lease_ms / 3000)

    async def _route_while_leased(self) -> None:
        o = self.owner
        # First what a previous router left pending, then new entries.
        start: dict[str, str] = dict.fromkeys(self.kinds, "0")
        tail = await self._delivered()  # where new entries start, for the idle wait
        try:
            while (read := await self.read(start)) is not None:
                raise_if_cancelled()
                for stream, entries in read.items():
                    if entries:
                        await self.ack(stream, entries, await self.route(stream, entries))
                    if start[stream] != ">":  # past the last pending one: on to new entries
                        start[stream] = entries[-1].id if entries else ">"
                    elif entries:
                        tail[stream] = entries[-1].id.encode()
                if not any(read.values()) and set(start.values()) == {">"}:
                    # Wait outside the script (scripts cannot block) for a new entry.
                    await o.redis.xread(tail, count=1, block=o.block_ms)  # type: ignore[arg-type]
        finally:
            with contextlib.suppress(RedisError):
                await o.redis.eval(RELEASE, 1, self.lease_key, o.member)  # type: ignore[misc]

    async def _delivered(self) -> dict[str, bytes]:
        """The router group's last delivered id per public stream: where new entries start."""
        out: dict[str, bytes] = {}
        for stream in self.kinds:
            for info in await self.owner.redis.xinfo_groups(stream):
                if info["name"] in (ROUTER_GROUP, ROUTER_GROUP.encode()):
                    out[stream] = info["last-delivered-id"]
        return out

    async def read(self, start: dict[str, str]) -> dict[str, list[Entry]] | None:
        """Renew the lease and read in one script, so only the lease holder ever reads
        (a router that lost its lease cannot take entries past its successor's back);
        None once the lease is lost."""
        o = self.owner
        streams = list(self.kinds)
        reply = await o.redis.eval(  # type: ignore[misc]
            _READ,
            1 + len(streams),
            self.lease_key,
            *streams,
            o.member,
            o.lease_ms,
            ROUTER_GROUP,
            self.CONSUMER,
            o.batch_size,
            *(start[s] for s in streams),
        )
        if not reply:  # the lease is lost (a nil reply; False in RESP3)
            return None
        read: dict[str, list[Entry]] = {s: [] for s in streams}
        read.update(_READ_REPLY.decode(reply))
        return read

    async def route(self, stream: str, entries: list[Entry]) -> list[Rejected]:
        """Copy entries to their shard streams, fields as they are, under their own ids
        (one script call per shard); returns those to dead-letter (with ``ack``)."""
        o, kind = self.owner, self.kinds[stream]
        by_shard, bad = self._sort(kind, entries)
        pipe = o.redis.pipeline(transaction=False)
        for shard, routed in by_shard.items():
            keys = (o.names.shard(shard, kind), o.names.shard(shard, "evaluator:cursor"))
            pipe.eval(_ROUTE, 2, *keys, _ENCODE(routed))
        late = sum(int(n) for n in await pipe.execute())
        if late:
            log.warning("evaluator router: %d entries came out of order, routed late", late)
        return bad

    async def ack(self, stream: str, entries: list[Entry], bad: list[Rejected]) -> None:
        done = self.owner.redis.pipeline(transaction=True)
        for rejected in bad:
            done.xadd(
                self.owner.names.deadletter, deadletter_fields(stream, ROUTER_GROUP, rejected)
            )
        xack_packed(done, stream, ROUTER_GROUP, [entry.id.encode() for entry in entries])
        await done.execute()
        for rejected in bad:
            metrics.DEAD_LETTERS.labels(stream, ROUTER_GROUP, rejected.kind).inc()

    def _sort(
        self, kind: str, entries: list[Entry]
    ) -> tuple[dict[int, list[Entry]], list[Rejected]]:
        """The entries of each shard, and the entries to dead-letter."""
        by_shard: dict[int, list[Entry]] = {}
        bad: list[Rejected] = []
        shards = self.owner.shards
        for entry in entries:
            body = _data(entry.fields)
            if body is None:
                # A pending entry trimmed away since comes back without fields.
                bad.append(_rejected(entry, "entry has no 'data' field"))
                continue
            try:
                tenant = _ROUTING.decode(_STR.decode(body)).tenant
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # not UTF-8: not JSON
                bad.append(_rejected(entry, f"{kind}: {exc}"))
                continue
            by_shard.setdefault(shard_of(tenant, shards), []).append(entry)
        return by_shard, bad


def _data(fields: list[msgspec.Raw] | bool) -> msgspec.Raw | None:
    """The 'data' field's value (the last one, as a dict of the fields would keep)."""
    if isinstance(fields, bool):
        return None
    for i in range(len(fields) - 2, -1, -2):
        if fields[i] == _DATA:
            return fields[i + 1]
    return None


def _unpacked(packed: msgspec.Raw) -> bytes:
    """A MessagePack str's bytes, whether UTF-8 or not."""
    view = memoryview(packed)
    return bytes(view[_STR_HEADER.get(view[0], 1) :])


def _rejected(entry: Entry, reason: str) -> Rejected:
    """The dead letter of an entry, with its fields as the producer wrote them."""
    flat = [] if isinstance(entry.fields, bool) else [_unpacked(f) for f in entry.fields]
    return Rejected(entry.id.encode(), dict(zip(flat[::2], flat[1::2], strict=True)), reason)
