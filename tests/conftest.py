"""Real Redis and PostgreSQL for the tests.

Testcontainers when a Docker engine answers; otherwise servers started from
the machine's own binaries (``redis-server``, ``initdb``/``postgres``) on free
loopback ports in a temporary directory. Each test gets its own stream prefix
and its own database (a copy of a migrated template), so tests never interfere.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import hypothesis
import psycopg
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from services.archiver.migrate import upgrade
from shared.localservers import LocalPostgres, LocalRedis, LocalRedisCluster
from shared.redisclient import connected
from shared.settings import Settings
from shared.streams import StreamNames

TEMPLATE_DB = "vigil_template"

# Shared CI machines stall now and then: a slow example is not a failing one.
hypothesis.settings.register_profile("vigil", deadline=None)
hypothesis.settings.load_profile("vigil")


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def server_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: an unprivileged PostgreSQL must be able to reach it.
    path = Path(tempfile.mkdtemp(prefix="vigil-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster_url(server_dir: Path) -> Iterator[str]:
    """A local 3-master Redis Cluster (``redis+cluster://`` URL), started once per session."""
    with LocalRedisCluster(server_dir / "redis-cluster").start() as cluster:
        yield cluster.url


@pytest.fixture(params=["single"])
def redis_kind(request: pytest.FixtureRequest) -> str:
    """Which Redis a test runs on; a module widens it with ``ON_SINGLE_AND_CLUSTER``."""
    return str(request.param)


ON_SINGLE_AND_CLUSTER = pytest.mark.parametrize("redis_kind", ["single", "cluster"], indirect=True)


@pytest.fixture
def redis_server_url(redis_kind: str, request: pytest.FixtureRequest) -> str:
    if redis_kind == "cluster":
        return str(request.getfixturevalue("redis_cluster_url"))
    return str(request.getfixturevalue("redis_single_url"))


@pytest.fixture(scope="session")
def redis_single_url(server_dir: Path) -> Iterator[str]:
    if _docker_available():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7") as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    with LocalRedis(server_dir / "redis", aof=False).start() as server:
        yield server.url


@pytest.fixture(scope="session")
def postgres_server_url(server_dir: Path) -> Iterator[str]:
    """URL of a database, on the test server, that new test databases are copied from."""
    if _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:15", driver=None) as container:
            yield _migrated_template(container.get_connection_url())
        return
    with LocalPostgres(server_dir / "postgres").start() as server:
        yield _migrated_template(server.url)


def _migrated_template(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    template_url = url.rsplit("/", 1)[0] + f"/{TEMPLATE_DB}"
    upgrade(template_url)
    return template_url


@pytest.fixture
def database_url(postgres_server_url: str) -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        postgres_server_url.rsplit("/", 1)[0] + "/postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    return postgres_server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def stream_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def names(stream_prefix: str) -> StreamNames:
    return StreamNames(stream_prefix)


@pytest.fixture
def settings(redis_server_url: str, stream_prefix: str) -> Settings:
    return Settings(
        redis_url=redis_server_url,
        database_url="",
        config_path=None,
        stream_prefix=stream_prefix,
        block_ms=100,
        reclaim_idle_ms=500,
        max_deliveries=3,
        consumer_name=f"c-{uuid.uuid4().hex[:6]}",
        ops_port=None,
    )


@pytest_asyncio.fixture
async def redis(redis_server_url: str) -> AsyncIterator[Redis]:
    client = await connected(redis_server_url)
    yield client
    await client.aclose()


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The archiver's store, once PostgreSQL (a fresh database), once SQLite (a fresh file)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vigil.db'}"
    return str(request.getfixturevalue("database_url"))
