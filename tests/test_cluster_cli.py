"""Operators' commands take a ``redis+cluster://`` URL like the services do."""

from __future__ import annotations

import asyncio

from redis.asyncio.cluster import RedisCluster
from typer.testing import CliRunner

from shared.cli import app
from shared.redisclient import plain_url
from shared.streams import StreamNames


def test_publish_and_dlq_commands_work_on_a_cluster(
    redis_cluster_url: str, stream_prefix: str
) -> None:
    env = {"VIGIL_REDIS_URL": redis_cluster_url, "VIGIL_STREAM_PREFIX": stream_prefix}
    published = CliRunner().invoke(
        app, ["publish", "metric", "acme", "shop", "queue", "7"], env=env
    )
    assert published.exit_code == 0, published.output
    dead = CliRunner().invoke(app, ["dlq", "list"], env=env)
    assert dead.exit_code == 0, dead.output

    async def metrics_on_the_cluster() -> int:
        client = RedisCluster.from_url(plain_url(redis_cluster_url))
        try:
            return int(await client.xlen(StreamNames(stream_prefix).metrics))
        finally:
            await client.aclose()

    assert asyncio.run(metrics_on_the_cluster()) == 1
