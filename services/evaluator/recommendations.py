"""What an operator should look at first, per alert category (a rule may override)."""

from __future__ import annotations

from schemas import Category

DEFAULTS: dict[Category, tuple[str, ...]] = {
    "availability": (
        "Check the service's health endpoint and recent deployments.",
        "Look at the load balancer and upstream dependencies for errors.",
    ),
    "performance": (
        "Compare latency with traffic: is the service saturated?",
        "Check slow queries and calls to external dependencies.",
    ),
    "database": (
        "Check connection pool usage and long-running queries.",
        "Look for locks, replication lag and disk usage on the database host.",
    ),
    "application": (
        "Read the error's stack trace and the latest release notes.",
        "Roll back the last deployment if the errors started with it.",
    ),
    "security": (
        "Look for a single source address or account behind the failures.",
        "Consider rate limiting or blocking the source; inform the security team.",
    ),
    "business": (
        "Confirm with the business owner whether the drop is expected.",
        "Check the upstream integrations that feed this metric.",
    ),
    "system": (
        "Check disk, memory and CPU on the host.",
        "Clean up or extend the resource before it runs out.",
    ),
}


def for_category(category: Category, override: list[str] | None) -> list[str]:
    return list(override) if override is not None else list(DEFAULTS[category])
