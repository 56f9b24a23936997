"""What a benchmark gets (servers, quick mode) and what it returns (rows of figures)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BenchEnv:
    redis_url: str
    database_url: str
    quick: bool  # CI smoke: small sizes, proves it runs, says nothing about speed

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full


@dataclass(frozen=True, slots=True)
class Row:
    metric: str
    value: float
    unit: str
    goal: float | None = None
    higher_is_better: bool = True
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        ok = self.value >= self.goal if self.higher_is_better else self.value <= self.goal
        return "pass" if ok else "short"


async def median_of(runs: int, once: Callable[[], Awaitable[float]]) -> float:
    """The median of ``runs`` measurements (these machines are noisy)."""
    return statistics.median([await once() for _ in range(runs)])


def rate(count: int, started: float) -> float:
    return count / (time.perf_counter() - started)
