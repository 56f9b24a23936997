"""Process settings, read once from the environment into a typed object."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import SettingsError


def env_value(env: Mapping[str, str], name: str) -> str | None:
    """``NAME`` from the environment, or the contents of the file named by ``NAME_FILE``."""
    if (value := env.get(name)) is not None:
        return value
    if path := env.get(f"{name}_FILE"):
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise SettingsError(f"{name}_FILE={path}: {exc.strerror}") from exc
    return None


def _port(value: str) -> int | None:
    """A TCP port; ``off`` disables, ``0`` takes any free port."""
    return None if value == "off" else int(value)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SettingsError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Connection URLs and tunables; secrets never live in the YAML config."""

    redis_url: str
    database_url: str
    config_path: Path | None
    stream_prefix: str = "vigil"
    consumer_name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    batch_size: int = 500
    block_ms: int = 1000
    reclaim_idle_ms: int = 60_000
    max_deliveries: int = 5
    retention_days: int = 30
    ops_host: str = "127.0.0.1"
    ops_port: int | None = 9464  # /livez, /readyz, /metrics; None: not served
    log_format: str = "console"
    ping_port: int | None = None  # the probe's heartbeat endpoint; None: not served
    evaluator_partition: int = 0  # this process's share of the tenants ...
    evaluator_partitions: int = 1  # ... out of this many evaluator processes
    probe_tiers: tuple[str, ...] = ()  # the tiers a probe worker serves; empty: all
    console_host: str = "127.0.0.1"
    console_port: int | None = 8080  # the console's API and dashboard; None: not served
    evaluator_shards: int = 1  # > 1: observations routed to this many leased stream shards
    evaluator_lease_ms: int = 10_000  # a dead shard owner's or router's shards wait this long
    archiver_batch_size: int = 5000  # entries per read of the results and metrics streams

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        redis_url = env_value(env, "VIGIL_REDIS_URL") or "redis://127.0.0.1:6379/0"
        database_url = env_value(env, "VIGIL_DATABASE_URL") or ""
        config = env_value(env, "VIGIL_CONFIG")
        try:
            return cls(
                redis_url=redis_url,
                database_url=database_url,
                config_path=Path(config) if config else None,
                stream_prefix=env.get("VIGIL_STREAM_PREFIX", "vigil"),
                batch_size=int(env.get("VIGIL_BATCH_SIZE", "500")),
                reclaim_idle_ms=int(env.get("VIGIL_RECLAIM_IDLE_MS", "60000")),
                max_deliveries=int(env.get("VIGIL_MAX_DELIVERIES", "5")),
                retention_days=int(env.get("VIGIL_RETENTION_DAYS", "30")),
                ops_host=env.get("VIGIL_OPS_HOST", "127.0.0.1"),
                ops_port=_port(env.get("VIGIL_OPS_PORT", "9464")),
                log_format=_choice(
                    "VIGIL_LOG_FORMAT", env.get("VIGIL_LOG_FORMAT", "console"), ("console", "json")
                ),
                ping_port=int(env["VIGIL_PING_PORT"]) if env.get("VIGIL_PING_PORT") else None,
                evaluator_partition=int(env.get("VIGIL_EVALUATOR_PARTITION", "0")),
                evaluator_partitions=int(env.get("VIGIL_EVALUATOR_PARTITIONS", "1")),
                console_host=env.get("VIGIL_CONSOLE_HOST", "127.0.0.1"),
                console_port=_port(env.get("VIGIL_CONSOLE_PORT", "8080")),
                probe_tiers=tuple(
                    t.strip() for t in env.get("VIGIL_PROBE_TIERS", "").split(",") if t.strip()
                ),
                evaluator_shards=int(env.get("VIGIL_EVALUATOR_SHARDS", "1")),
                evaluator_lease_ms=int(env.get("VIGIL_EVALUATOR_LEASE_MS", "10000")),
                archiver_batch_size=int(env.get("VIGIL_ARCHIVER_BATCH_SIZE", "5000")),
            )
        except ValueError as exc:
            raise SettingsError(f"numeric setting is not a number: {exc}") from exc
