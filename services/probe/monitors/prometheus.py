"""Prometheus scrape: parse the exposition format and publish the samples as metrics."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import ClassVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from schemas import MetricSample
from services.probe.monitors.base import (
    CheckConfig,
    Outcome,
    ProbeContext,
    failed,
    read_bounded,
    require_url,
)

MAX_BODY = 8 << 20


class PrometheusCheck(CheckConfig, frozen=True, kw_only=True, tag="prometheus", tag_field="type"):
    url: str
    headers: dict[str, str] = {}
    include: list[str] = []  # metric name prefixes to keep; empty keeps all
    max_samples: int = 10_000  # more samples than this: the scrape is refused
    # Added to every sample (as Prometheus' target labels): tells apart replicas whose
    # series are otherwise the same, e.g. {instance: notifier-1}.
    labels: dict[str, str] = {}

    def __post_init__(self) -> None:
        require_url(self.url, ("http", "https"))


class PrometheusMonitor:
    type: ClassVar[str] = "prometheus"
    description: ClassVar[str] = (
        "Prometheus /metrics scrape; counters, gauges and buckets published as metric events"
    )

    async def run(self, check: PrometheusCheck, ctx: ProbeContext) -> Outcome:
        client = ctx.http.client()
        try:
            async with client.stream(
                "GET", check.url, headers=check.headers, timeout=check.timeout
            ) as response:
                if response.status_code != 200:
                    return Outcome("unhealthy", {"error": f"status {response.status_code}"})
                body = await read_bounded(response, MAX_BODY)
        except httpx.HTTPError as exc:
            return failed("unhealthy", exc)
        if body is None:
            return Outcome("unhealthy", {"error": f"body larger than {MAX_BODY} bytes"})
        try:
            samples = _samples(check, body.decode(errors="replace"))
        except ValueError as exc:  # the parser's way of saying "not the exposition format"
            return failed("unhealthy", exc, "unparseable metrics")
        if len(samples) > check.max_samples:
            error = f"{len(samples)} samples > max_samples {check.max_samples}"
            return Outcome("unhealthy", {"error": error})
        return Outcome("healthy", {"samples": len(samples)}, samples)


def _samples(check: PrometheusCheck, text: str) -> list[MetricSample]:
    now = datetime.now(UTC)
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if check.include and not sample.name.startswith(tuple(check.include)):
                continue
            if not math.isfinite(sample.value):  # JSON has no NaN; rules cannot use it
                continue
            found.append(
                MetricSample(
                    tenant=check.tenant,
                    service=check.service,
                    metric=sample.name,
                    value=float(sample.value),
                    labels=dict(sample.labels) | check.labels,
                    observed_at=now,
                )
            )
            if len(found) > check.max_samples:
                return found
    return found
