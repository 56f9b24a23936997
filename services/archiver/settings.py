"""The ``archive:`` section of the YAML configuration: retention and housekeeping."""

from __future__ import annotations

from typing import Annotated

import msgspec

from shared.configbase import ConfigStruct, Seconds

Days = Annotated[int, msgspec.Meta(ge=1, le=36_500)]
# Every table retention applies to, with the column that dates a row.
DATED: dict[str, str] = {
    "check_results": "observed_at",
    "metric_samples": "observed_at",
    "check_rollups": "hour",
    "check_rollups_daily": "day",
    "alert_events": "started_at",
    "deliveries": "at",
    "alerts": "started_at",
    "audit_log": "at",
}


class ArchiveConfig(ConfigStruct, frozen=True, kw_only=True):
    """Retention per table (days), partitions made ahead, stream replay window, TTLs."""

    retention_days: Days | None = None  # default for every table; else VIGIL_RETENTION_DAYS
    retention: dict[str, Days] = {}
    partitions_ahead: Annotated[int, msgspec.Meta(ge=0, le=60)] = 3
    replay_window: Seconds = Seconds(86400)
    prune_every: Seconds = Seconds(3600)
    alert_ttl: Seconds = Seconds(86400)
    rollup_every: Seconds = Seconds(5)  # how stale rollups may get between queries

    def __post_init__(self) -> None:
        for table in self.retention:
            if table not in DATED:
                raise ValueError(f"retention: unknown table {table!r}; one of {', '.join(DATED)}")

    def days(self, table: str, fallback: int) -> int:
        """Retention of ``table`` in days; ``fallback`` comes from the process settings."""
        return self.retention.get(table, self.retention_days or fallback)
