"""``vigil rules check`` and ``vigil rules dry-run`` against a real Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis
from typer.testing import CliRunner, Result

from schemas import MetricSample
from services.evaluator.observation import from_sample
from services.evaluator.service import Evaluator
from shared.cli import app
from shared.config import load_config
from shared.settings import Settings
from shared.streams import StreamNames, encode

CONFIG = """
tenants: [{id: acme}]
default_rules: true
threshold_overrides: {acme: {queue_backlog: 500}}
channels:
  - {name: ops, type: webhook, url: "http://127.0.0.1:9/down", max_attempts: 1}
routes: [{channels: [ops]}]
"""


def metric(name: str, value: float, at: datetime, **labels: str) -> MetricSample:
    return MetricSample(
        tenant="acme", service="shop", metric=name, value=value, observed_at=at, labels=labels
    )


async def invoke(settings: Settings, config: Path, *args: str) -> Result:
    env = {
        "VIGIL_CONFIG": str(config),
        "VIGIL_REDIS_URL": settings.redis_url,
        "VIGIL_STREAM_PREFIX": settings.stream_prefix,
    }
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def test_rules_check_prints_one_line_per_rule_even_with_channels_down(
    redis: Redis, settings: Settings, names: StreamNames, tmp_path: Path
) -> None:
    path = tmp_path / "vigil.yaml"
    path.write_text(CONFIG)
    evaluator = Evaluator(load_config(path), redis, names)
    now = datetime.now(UTC)
    samples = [
        metric("disk_used_percent", 95, now, mount="/"),
        metric("queue_depth", 120, now),  # over the default 100, under acme's 500
        metric("http_requests", 1000, now),
        metric("http_requests_5xx", 72, now),
    ]
    pipe = redis.pipeline(transaction=True)
    evaluator.evaluate([from_sample(s) for s in samples], pipe, now.timestamp())
    await pipe.execute()

    result = await invoke(settings, path, "rules", "check")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 15  # one per rule of the default pack
    assert (
        "[FIRING] disk_usage: disk usage is 95 % (threshold 80 %, exceeded by 19 %)"
        " — acme/shop [mount=/]" in lines
    )
    assert (
        "[FIRING] high_error_rate: 5xx error rate is 7.2 % (threshold 5 %, exceeded by 44 %)"
        " — acme/shop" in lines
    )
    assert "[OK] queue_backlog: 1 series within threshold" in lines
    assert "[OK] failed_logins: no data" in lines

    result = await invoke(settings, path, "rules", "check", "--rule", "disk_usage", "--verbose")
    assert result.exit_code == 0
    assert result.output.splitlines()[1].split() == [
        "FIRING", "acme/shop", "[mount=/]:", "disk", "usage", "is", "95", "%", "(threshold",
        "80", "%,", "exceeded", "by", "19", "%)",
    ]  # fmt: skip


async def test_dry_run_replays_a_range_and_publishes_nothing(
    redis: Redis, settings: Settings, names: StreamNames, tmp_path: Path
) -> None:
    path = tmp_path / "vigil.yaml"
    path.write_text(CONFIG)
    start = datetime.now(UTC) - timedelta(hours=1)
    ids = []
    for minute, value in enumerate([50, 85, 90, 70, 99]):
        at = start + timedelta(minutes=minute)
        ids.append(await redis.xadd(names.metrics, encode(metric("disk_used_percent", value, at))))

    result = await invoke(settings, path, "rules", "dry-run", "--rule", "disk_usage")
    assert result.exit_code == 0, result.output
    states = [line.split('"state":"')[1][:5] for line in result.stdout.splitlines()]
    assert states == ["firin", "resol", "firin"]
    assert "3 alert events (dry run: nothing was published)" in result.output

    result = await invoke(settings, path, "rules", "dry-run", "--end", ids[1].decode())
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1
    assert await redis.xlen(names.alerts) == 0
    assert await redis.exists(names.key("evaluator:state")) == 0
