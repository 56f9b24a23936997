"""The default rule pack: the operators' threshold table (docs/alert-thresholds.md).

Enabled with ``default_rules: true``; thresholds can be overridden per tenant
(``threshold_overrides``) and a configured rule of the same name replaces one here.
Metric names are the ones documented in docs/alert-thresholds.md.

Every rule links its runbook under docs/runbooks/ (made absolute with the config's
``runbook_base_url``). The ``vigil_*`` rules watch Vigil itself: they need the
self-watch checks of deploy/docker/vigil.yaml (``vigil-lag-*`` stream_lag checks and a
prometheus scrape of Vigil's own /metrics, service ``vigil``).
"""

from __future__ import annotations

from services.evaluator.kinds.absence import AbsenceRule
from services.evaluator.kinds.application import ApplicationErrorRule
from services.evaluator.kinds.consecutive import ConsecutiveRule
from services.evaluator.kinds.threshold import ThresholdRule
from services.evaluator.rulebase import Selector
from shared.configbase import Seconds

MIN = 60.0
HOUR = 3600.0
RUNBOOKS = "docs/runbooks/"


def service_runbook(rule: str) -> str:
    return f"{RUNBOOKS}service-rules.md#{rule}"


DEFAULT_RULES: list[ConsecutiveRule | ThresholdRule | ApplicationErrorRule | AbsenceRule] = [
    ThresholdRule(
        name="high_error_rate",
        runbook_url=service_runbook("high_error_rate"),
        source="http_requests_5xx",
        ratio_of="http_requests",
        aggregate="sum",
        window=Seconds(5 * MIN),
        threshold=0.05,
        severity="critical",
        category="availability",
        subject="5xx error rate",
        unit="%",
        scale=100,
        title="High 5xx error rate on {service}",
    ),
    ThresholdRule(
        name="slow_p95_latency",
        runbook_url=service_runbook("slow_p95_latency"),
        source="latency",
        aggregate="p95",
        window=Seconds(5 * MIN),
        threshold=2.0,
        for_=Seconds(5 * MIN),
        severity="warning",
        category="performance",
        subject="p95 latency",
        unit="s",
        title="{check} on {service} is slow",
    ),
    ThresholdRule(
        name="queue_backlog",
        runbook_url=service_runbook("queue_backlog"),
        source="queue_depth",
        threshold=100,
        for_=Seconds(10 * MIN),
        by=["queue"],
        severity="warning",
        category="performance",
        subject="queue depth",
        title="Queue backlog on {service}",
    ),
    ThresholdRule(
        name="db_pool_exhausted",
        runbook_url=service_runbook("db_pool_exhausted"),
        source="db_pool_in_use",
        ratio_of="db_pool_max",
        threshold=0.9,
        severity="critical",
        category="database",
        subject="database pool usage",
        unit="%",
        scale=100,
        title="Database pool nearly exhausted on {service}",
    ),
    ThresholdRule(
        name="job_failure_rate",
        runbook_url=service_runbook("job_failure_rate"),
        source="jobs_failed",
        ratio_of="jobs_total",
        aggregate="sum",
        window=Seconds(15 * MIN),
        threshold=0.10,
        severity="warning",
        category="application",
        subject="job failure rate",
        unit="%",
        scale=100,
        title="Jobs failing on {service}",
    ),
    ThresholdRule(
        name="failed_jobs_daily",
        runbook_url=service_runbook("failed_jobs_daily"),
        source="jobs_failed",
        aggregate="sum",
        window=Seconds(24 * HOUR),
        threshold=50,
        severity="warning",
        category="application",
        subject="failed jobs in 24 h",
        title="Many failed jobs on {service}",
    ),
    ConsecutiveRule(
        name="health_check_failing",
        runbook_url=service_runbook("health_check_failing"),
        failures=3,
        severity="critical",
        category="availability",
        title="{check} on {service} is failing",
    ),
    ThresholdRule(
        name="sync_errors",
        runbook_url=service_runbook("sync_errors"),
        source="sync_errors",
        aggregate="sum",
        window=Seconds(HOUR),
        threshold=5,
        severity="warning",
        category="business",
        subject="sync errors in 1 h",
        title="Sync errors on {service}",
    ),
    ThresholdRule(
        name="disk_usage",
        runbook_url=service_runbook("disk_usage"),
        source="disk_used_percent",
        threshold=80,
        by=["mount"],
        severity="warning",
        category="system",
        subject="disk usage",
        unit="%",
        title="Disk filling up on {service}",
    ),
    ThresholdRule(
        name="failed_logins",
        runbook_url=service_runbook("failed_logins"),
        source="failed_logins",
        aggregate="sum",
        window=Seconds(5 * MIN),
        threshold=20,
        severity="critical",
        category="security",
        subject="failed logins in 5 min",
        title="Failed login burst on {service}",
    ),
    ApplicationErrorRule(
        name="application_errors", runbook_url=service_runbook("application_errors")
    ),
    # Vigil watches itself.
    ConsecutiveRule(
        name="vigil_stream_backlog",
        match=Selector(check="vigil-lag-*"),
        failing=frozenset({"degraded", "unhealthy"}),
        failures=3,
        successes=2,
        severity="warning",
        category="system",
        title="Vigil backlog: {check}",
        runbook_url=RUNBOOKS + "stream-backlog.md",
    ),
    ThresholdRule(
        name="vigil_dead_letters",
        source="vigil_dead_letters_total",
        aggregate="rate",
        window=Seconds(10 * MIN),
        threshold=0,
        by=["stream", "group", "kind", "instance"],
        severity="warning",
        category="system",
        subject="dead letters per second",
        title="Vigil is dead-lettering {stream} ({kind})",
        runbook_url=RUNBOOKS + "dead-letters.md",
    ),
    ThresholdRule(
        name="vigil_delivery_failures",
        source="vigil_deliveries_total",
        match=Selector(labels={"outcome": "failed"}),
        aggregate="rate",
        window=Seconds(15 * MIN),
        threshold=0,
        by=["channel", "instance"],
        severity="critical",
        category="system",
        subject="failed deliveries per second",
        title="Vigil cannot deliver to channel {channel}",
        runbook_url=RUNBOOKS + "delivery-failures.md",
    ),
    AbsenceRule(
        name="vigil_probe_silent",
        source="status",
        match=Selector(check="vigil-*"),
        after=Seconds(3 * MIN),
        by=["check", "tier"],
        severity="critical",
        title="No results from {check}: is a probe worker lost?",
        runbook_url=RUNBOOKS + "probe-worker-lost.md",
    ),
]
