"""``vigil rules …``: look at the rules without notifying anyone."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import msgspec
import typer

from services.evaluator.engine import Engine
from services.evaluator.inspect import check_lines, replay
from services.evaluator.replay import observations
from services.evaluator.service import Evaluator
from shared.config import Config, load_config
from shared.errors import VigilError
from shared.redisclient import connected
from shared.settings import Settings
from shared.streams import StreamNames

rules_app = typer.Typer(no_args_is_help=True, help="Alert rules: check and dry-run.")


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="rules")


def _setup() -> tuple[Settings, Config]:
    settings = Settings.from_env()
    if settings.config_path is None:
        raise VigilError("VIGIL_CONFIG is not set: it names the YAML configuration")
    return settings, load_config(settings.config_path)


@rules_app.command("check")
def check(
    rule: Annotated[str | None, typer.Option("--rule", help="only this rule")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="one line per series")] = False,
) -> None:
    """Evaluate every rule against the evaluator's current state; print, notify nobody."""
    settings, config = _setup()
    if rule is not None and rule not in {r.name for r in config.all_rules}:
        raise VigilError(f"unknown rule {rule!r}")

    async def main() -> list[str]:
        redis = await connected(settings.redis_url)
        try:
            names, n = StreamNames(settings.stream_prefix), settings.evaluator_partitions
            parts = [Evaluator(config, redis, names, partition=p, partitions=n) for p in range(n)]
            if (shards := settings.evaluator_shards) > 1:
                parts = [Evaluator(config, redis, names, shard=s) for s in range(shards)]
            for part in parts:
                await part.load()
            states = {k: s for part in parts for k, s in part.states.items()}
            return check_lines(parts[0].engine, states, time.time(), rule, verbose)
        finally:
            await redis.aclose()

    for line in asyncio.run(main()):
        typer.echo(line)


@rules_app.command("dry-run")
def dry_run(
    start: Annotated[str, typer.Option("--start", help="first stream entry id")] = "-",
    end: Annotated[str, typer.Option("--end", help="last stream entry id")] = "+",
    rule: Annotated[str | None, typer.Option("--rule", help="only this rule")] = None,
) -> None:
    """Replay the results and metrics streams between two entry ids through the rules,
    from an empty state, and print the alert events they would produce. Emits nothing."""
    settings, config = _setup()
    rules = [r for r in config.all_rules if rule is None or r.name == rule]
    if not rules:
        raise VigilError(f"unknown rule {rule!r}")
    engine = Engine(rules, config.threshold_overrides, config.muting)

    async def main() -> list[str]:
        redis = await connected(settings.redis_url)
        try:
            found = await observations(redis, StreamNames(settings.stream_prefix), start, end)
        finally:
            await redis.aclose()
        return [msgspec.json.encode(e).decode() for e in replay(engine, found)]

    lines = asyncio.run(main())
    for line in lines:
        typer.echo(line)
    typer.echo(f"{len(lines)} alert events (dry run: nothing was published)", err=True)
