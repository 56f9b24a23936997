"""Configuration changed at run time through the console API, and how it combines with
the YAML file.

The console writes the whole active set, with a generation number, to one Redis hash;
evaluators and notifiers poll the generation and adopt a newer set without a restart.

How the two sources combine (docs/api.md):
- rules and channels: an API object adds to the file's, or replaces the file's object of
  the same name; a disabled API rule removes the rule of that name altogether;
- silences and maintenance windows: the API's are added to the file's;
- routes: the API's come first (ordered by name), then the file's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeVar

import msgspec
from redis.asyncio import Redis

from services.evaluator.muting import MaintenanceWindow, Muting, Silence
from services.evaluator.rules import AnyRule
from services.notifier.channels import AnyChannelConfig
from services.notifier.routing import Route
from shared.config import Config
from shared.configbase import Seconds, dec_hook
from shared.streams import StreamNames

Named = TypeVar("Named", AnyRule, AnyChannelConfig)


class LiveSet(msgspec.Struct, frozen=True, kw_only=True):
    """Every enabled API-managed object; ``disabled_rules`` switch rules off by name."""

    generation: int = 0
    rules: list[AnyRule] = []
    disabled_rules: list[str] = []
    silences: list[Silence] = []
    maintenance: list[MaintenanceWindow] = []
    channels: list[AnyChannelConfig] = []
    routes: list[Route] = []


def _by_name(
    base: Sequence[Named], extra: Sequence[Named], drop: frozenset[str] = frozenset()
) -> list[Named]:
    replaced = {x.name for x in extra} | drop
    return [x for x in base if x.name not in replaced] + [x for x in extra if x.name not in drop]


def rules(config: Config, live: LiveSet) -> list[AnyRule]:
    return _by_name(config.all_rules, live.rules, frozenset(live.disabled_rules))


def muting(config: Config, live: LiveSet) -> Muting:
    return Muting(
        silences=[*config.silences, *live.silences],
        maintenance=[*config.maintenance, *live.maintenance],
        inhibit=config.inhibit,
    )


def notifier_config(config: Config, live: LiveSet) -> Config:
    """The file's configuration with the API's channels and routes merged in."""
    channels = _by_name(config.channels, live.channels)
    known = {c.name for c in channels}
    # The console refuses routes to unknown channels; this keeps a notifier safe anyway
    # (e.g. a channel disabled after a route named it).
    routes = [
        msgspec.structs.replace(r, channels=[c for c in r.channels if c in known])
        for r in live.routes
    ]
    return msgspec.structs.replace(config, channels=channels, routes=[*routes, *config.routes])


# Set only when newer: two console replicas publishing at once never go backwards.
_PUBLISH = """
local current = tonumber(redis.call('HGET', KEYS[1], 'generation') or '-1')
if tonumber(ARGV[1]) > current then
  redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'set', ARGV[2])
  return 1
end
return 0
"""


def enc_hook(value: object) -> object:
    if isinstance(value, Seconds):
        return float(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def key(names: StreamNames) -> str:
    return names.key("console:live")


async def publish(redis: Redis, names: StreamNames, live: LiveSet) -> bool:
    """Offer ``live`` to every running service; False when a newer set is already out."""
    body = msgspec.json.encode(live, enc_hook=enc_hook)
    done = await redis.eval(_PUBLISH, 1, key(names), live.generation, body)  # type: ignore[misc]
    return bool(done)


async def generation(redis: Redis, names: StreamNames) -> int:
    raw = await redis.hget(key(names), "generation")  # type: ignore[misc]
    return -1 if raw is None else int(raw)


async def fetch(redis: Redis, names: StreamNames) -> LiveSet | None:
    """The published set, or None when the console never published one."""
    raw = await redis.hget(key(names), "set")  # type: ignore[misc]
    return None if raw is None else msgspec.json.decode(raw, type=LiveSet, dec_hook=dec_hook)


def stop_if_cancelled() -> None:
    """End a polling loop whose task was cancelled even if a library swallowed the
    CancelledError (seen with redis-py: the loop then went on polling for ever)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
