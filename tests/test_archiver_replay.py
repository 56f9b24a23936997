"""Replay reproduces what the live evaluator fired, from the stream or from the archive."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from redis.asyncio import Redis

from schemas import AlertEvent, CheckResult
from services.archiver.replay import Filter, run_replay
from services.archiver.service import Archiver
from services.evaluator.rules import ConsecutiveRule
from services.evaluator.service import Evaluator
from shared.config import Config
from shared.consumer import BatchProcessor
from shared.settings import Settings
from shared.streams import StreamNames, encode, ensure_group

T0 = datetime(2026, 11, 24, 9, tzinfo=UTC)
RULES = [ConsecutiveRule(name="down", failures=3, successes=2)]
# web fails 4 times, recovers, fails 3 times, recovers; api fails twice only
PATTERN = {
    "web": "UUUUHHHUUUHH",
    "api": "HUUHHHHHHHHH",
}


def results() -> list[CheckResult]:
    out = []
    for minute in range(12):
        for check, statuses in PATTERN.items():
            out.append(
                CheckResult(
                    tenant="acme",
                    service="shop",
                    check=check,
                    tier="core",
                    status="unhealthy" if statuses[minute] == "U" else "healthy",
                    latency_ms=1.0,
                    observed_at=T0 + timedelta(minutes=minute),
                )
            )
    return out


async def live_pipeline(redis: Redis, names: StreamNames) -> list[bytes]:
    """Publish the results and let the real evaluator adapter turn them into alerts."""
    ids = []
    for r in results():
        ms = int(r.observed_at.timestamp() * 1000) + 5  # arrives just after it was observed
        ids.append(await redis.xadd(names.results, encode(r), id=f"{ms}-*"))
    evaluator = Evaluator(Config(rules=RULES), redis, names)
    await ensure_group(redis, names.results, "evaluator")
    process = BatchProcessor(redis, names, evaluator.consumer(), 5)
    [[_, entries]] = await redis.xreadgroup("evaluator", "w", {names.results: ">"})
    await process([i for i, _ in entries], [f for _, f in entries])
    return ids


async def test_replay_reproduces_the_live_alerts_from_the_stream_then_from_the_archive(
    redis: Redis, settings: Settings, names: StreamNames, database_url: str
) -> None:
    await live_pipeline(redis, names)
    live = [
        msgspec.json.decode(f[b"data"], type=AlertEvent)
        for _, f in await redis.xrange(names.alerts)
    ]
    assert [(e.state, e.labels["check"]) for e in live] == [
        ("firing", "web"),
        ("resolved", "web"),
        ("firing", "web"),
        ("resolved", "web"),
    ]
    settings = Settings(
        redis_url=settings.redis_url,
        database_url=database_url,
        config_path=None,
        stream_prefix=settings.stream_prefix,
    )
    f = Filter(T0, T0 + timedelta(hours=1))
    stream_only = dataclasses.replace(settings, database_url="")
    out = json.loads(await run_replay(stream_only, f, RULES, compare=True, output="json"))
    assert [(x["state"], x["check"], x["seen"]) for x in out] == [
        ("firing", "web", "both"),
        ("resolved", "web", "both"),
        ("firing", "web", "both"),
        ("resolved", "web", "both"),
    ]
    assert out[0]["at"] == "2026-11-24T09:02:00Z"  # the third failure in a row

    # Archive everything, then trim the streams as retention would: replay uses the archive.
    archiver = Archiver(database_url, names, clock=lambda: T0)
    await archiver.writers[CheckResult](
        [
            (i, msgspec.json.decode(f[b"data"], type=CheckResult))
            for i, f in await redis.xrange(names.results)
        ],
        redis.pipeline(),
    )
    await archiver.writers[AlertEvent](
        [(i, e) for (i, _), e in zip(await redis.xrange(names.alerts), live, strict=True)],
        redis.pipeline(),
    )
    await archiver.close()
    for stream in (names.results, names.alerts):
        await redis.xtrim(stream, minid="9999999999999", approximate=False)
    text = await run_replay(settings, f, RULES, compare=True, output="table")
    assert text.endswith(
        "replayed from the archive: 2 fired, 2 resolved; 4 as really happened, 0 different"
    )

    # A stricter rule set: web's 3-failure run no longer fires; api's never did.
    stricter = [ConsecutiveRule(name="down", failures=4, successes=2)]
    out = json.loads(await run_replay(settings, f, stricter, compare=True, output="json"))
    assert [(x["state"], x["at"][11:16], x["seen"]) for x in out] == [
        ("firing", "09:02", "actual"),
        ("firing", "09:03", "replay"),  # the 4th failure: fires a minute later
        ("resolved", "09:05", "replay"),
        ("resolved", "09:05", "actual"),
        ("firing", "09:09", "actual"),  # a run of 3 no longer fires
        ("resolved", "09:11", "actual"),
    ]


async def test_replay_command_prints_a_table(
    redis: Redis, settings: Settings, names: StreamNames, tmp_path: Path
) -> None:
    await live_pipeline(redis, names)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - type: consecutive\n    name: down\n    failures: 3\n    successes: 2\n"
    )
    env = {
        "VIGIL_REDIS_URL": settings.redis_url,
        "VIGIL_STREAM_PREFIX": settings.stream_prefix,
        "PATH": "/usr/bin:/bin",
    }
    argv = [
        sys.executable, "-c", "from shared.cli import main; main()", "replay",
        "--from", "2026-11-24T09:00:00", "--to", "2026-11-24T10:00:00", "--service", "shop",
        "--rules", str(rules),
    ]  # fmt: skip
    out = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == [
        "time", "(UTC)", "state", "rule", "tenant/service/check", "title", "seen", "in"
    ]  # fmt: skip
    assert lines[1].split()[:5] == ["2026-11-24", "09:02:00", "firing", "down", "acme/shop/web"]
    assert lines[-1] == (
        "replayed from the stream: 2 fired, 2 resolved; 4 as really happened, 0 different"
    )
