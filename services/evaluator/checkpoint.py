"""Writing a batch's changed series states into the checkpoint hash with one command.

An ``HSET`` with one field per series costs redis-py a Python-level encode and pack per
argument: a thousand arguments a batch was the evaluator's largest single cost. Here
msgspec encodes the whole ``{series key: state bytes}`` map as one MessagePack blob (in
C) and a short Lua script splits it into the same hash fields. The hash keeps its format:
one field per series, so loading and ``vigil rules check`` are unchanged. (Redis' own
``cmsgpack`` rejects MessagePack ``bin`` values, hence the small reader below.)
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from redis.asyncio.client import Pipeline

# Reads the map msgspec writes: a map header, then str keys and bin values.
HSET_PACKED = """
local s = ARGV[1]
local function header(pos, small, base, one, two, four)
  local b = string.byte(s, pos)
  if small and b >= base and b < base + small then return b - base, pos + 1 end
  if b == one then return string.byte(s, pos + 1), pos + 2 end
  if b == two then return struct.unpack('>I2', s, pos + 1) end
  if b == four then return struct.unpack('>I4', s, pos + 1) end
  error('checkpoint blob: unexpected MessagePack byte ' .. b .. ' at ' .. pos)
end
local count, pos = header(1, 16, 0x80, nil, 0xde, 0xdf)
local args, n = {}, 0
for _ = 1, count do
  local klen, kpos = header(pos, 32, 0xa0, 0xd9, 0xda, 0xdb)
  local vlen, vpos = header(kpos + klen, nil, nil, 0xc4, 0xc5, 0xc6)
  args[n + 1] = string.sub(s, kpos, kpos + klen - 1)
  args[n + 2] = string.sub(s, vpos, vpos + vlen - 1)
  n = n + 2
  pos = vpos + vlen
  if n >= 2000 then  -- unpack() is bounded by Lua's C stack
    redis.call('HSET', KEYS[1], unpack(args, 1, n))
    args, n = {}, 0
  end
end
if n > 0 then redis.call('HSET', KEYS[1], unpack(args, 1, n)) end
return count
"""

_encode = msgspec.msgpack.Encoder().encode


def hset_packed(pipe: Pipeline, key: str, fields: Mapping[str, bytes]) -> None:
    """Queue ``HSET key field value ...`` for every entry of ``fields`` as one EVAL."""
    if fields:
        # EVAL, not EVALSHA: inside MULTI a NOSCRIPT could not be retried; Redis caches
        # the compiled script by its hash, so only its ~1 kB of text travels each batch.
        pipe.eval(HSET_PACKED, 1, key, _encode(fields))
