"""Replay reproduces what the live evaluator fired, from the stream or from the archive
(PostgreSQL or SQLite)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from redis.asyncio import Redis

from schemas import AlertEvent, CheckResult
from services.archiver.replay import PAGE, Filter, run_replay
from services.archiver.service import Archiver
from services.evaluator.rules import ConsecutiveRule
from services.evaluator.service import Evaluator
from shared.config import Config
from shared.consumer import BatchProcessor
from shared.settings import Settings
from shared.streams import StreamNames, encode, ensure_group

# Recent, whole hour: the live evaluator ignores observations from the future or days old.
T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
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
    process = BatchProcessor(redis, names, evaluator.consumers()[0], 5)
    [[_, entries]] = await redis.xreadgroup("evaluator", "w", {names.results: ">"})
    await process([i for i, _ in entries], [f for _, f in entries])
    return ids


async def test_replay_reproduces_the_live_alerts_from_the_stream_then_from_the_archive(
    redis: Redis, settings: Settings, names: StreamNames, store_url: str
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
        database_url=store_url,
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
    third_failure = T0 + timedelta(minutes=2)
    assert out[0]["at"] == third_failure.strftime("%Y-%m-%dT%H:%M:%SZ")

    # Archive everything, then trim the streams as retention would: replay uses the archive.
    archiver = Archiver(store_url, names, clock=lambda: T0)
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

    def at(minute: int) -> str:
        return (T0 + timedelta(minutes=minute)).strftime("%H:%M")

    assert [(x["state"], x["at"][11:16], x["seen"]) for x in out] == [
        ("firing", at(2), "actual"),
        ("firing", at(3), "replay"),  # the 4th failure: fires a minute later
        ("resolved", at(5), "replay"),
        ("resolved", at(5), "actual"),
        ("firing", at(9), "actual"),  # a run of 3 no longer fires
        ("resolved", at(11), "actual"),
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
        "--from", T0.strftime("%Y-%m-%dT%H:%M:%S"),
        "--to", (T0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), "--service", "shop",
        "--rules", str(rules),
    ]  # fmt: skip
    out = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == [
        "time", "(UTC)", "state", "rule", "tenant/service/check", "title", "seen", "in"
    ]  # fmt: skip
    third_failure = T0 + timedelta(minutes=2)
    assert lines[1].split()[:5] == [
        third_failure.strftime("%Y-%m-%d"), third_failure.strftime("%H:%M:%S"),
        "firing", "down", "acme/shop/web",
    ]  # fmt: skip
    assert lines[-1] == (
        "replayed from the stream: 2 fired, 2 resolved; 4 as really happened, 0 different"
    )
    # progress on stderr, through the range: the last result is 11 minutes into the hour
    last = T0 + timedelta(minutes=11)
    assert f"replay: 24 results read, up to {last:%Y-%m-%d %H:%M:%S}Z (18%)" in out.stderr


async def test_replay_reports_progress_through_a_long_range(
    redis: Redis, settings: Settings, names: StreamNames, store_url: str
) -> None:
    count = 2 * PAGE + 100  # two whole pages and a partial one
    step = timedelta(hours=1) / count
    healthy = [
        CheckResult(
            tenant="acme", service="shop", check=f"c{i % 7}", tier="core", status="healthy",
            latency_ms=1.0, observed_at=T0 + step * i,
        )
        for i in range(count)
    ]  # fmt: skip
    pipe = redis.pipeline()
    for r in healthy:
        pipe.xadd(names.results, encode(r), id=f"{int(r.observed_at.timestamp() * 1000) + 5}-*")
    await pipe.execute()
    f = Filter(T0, T0 + timedelta(hours=1))
    seen: list[tuple[int, datetime]] = []

    def progress(n: int, at: datetime) -> None:
        seen.append((n, at))

    stream_only = Settings(
        redis_url=settings.redis_url,
        database_url="",
        config_path=None,
        stream_prefix=settings.stream_prefix,
    )
    await run_replay(stream_only, f, RULES, compare=False, output="json", progress=progress)
    expected = [(PAGE, healthy[PAGE - 1]), (2 * PAGE, healthy[2 * PAGE - 1]), (count, healthy[-1])]
    assert seen == [(n, r.observed_at) for n, r in expected]
    assert [f.done(at) for _, at in seen] == pytest.approx(
        [(n - 1) / count for n, _ in expected], rel=1e-4
    )

    # From the archive once the stream no longer holds the range: the same reports.
    archiver = Archiver(store_url, names, clock=lambda: T0)
    ids = [i for i, _ in await redis.xrange(names.results)]
    await archiver.writers[CheckResult](list(zip(ids, healthy, strict=True)), redis.pipeline())
    await archiver.close()
    await redis.xtrim(names.results, minid="9999999999999", approximate=False)
    seen.clear()
    with_archive = dataclasses.replace(stream_only, database_url=store_url)
    text = await run_replay(
        with_archive, f, RULES, compare=False, output="table", progress=progress
    )
    assert text.endswith("replayed from the archive: 0 fired, 0 resolved")
    assert [(n, at.astimezone(UTC)) for n, at in seen] == [(n, r.observed_at) for n, r in expected]
