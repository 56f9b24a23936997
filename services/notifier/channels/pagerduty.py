"""PagerDuty Events API v2: trigger on firing, acknowledge on acknowledged, resolve on
resolved, all with one stable dedup_key."""

from __future__ import annotations

from typing import Any, ClassVar

from services.notifier.channels.base import ChannelConfig, SendContext, host_of, post_json
from services.notifier.templates import Notification


class PagerDutyConfig(ChannelConfig, frozen=True, kw_only=True, tag="pagerduty", tag_field="type"):
    secret_fields: ClassVar[tuple[str, ...]] = ("routing_key",)

    routing_key: str
    base_url: str = "https://events.pagerduty.com"
    source: str = "vigil"

    def target(self) -> str:
        return host_of(self.base_url)


def dedup_key(note: Notification) -> str:
    """The same for every event of one alert, so PagerDuty folds them into one incident."""
    return f"vigil:{note.alert.tenant}:{note.alert.fingerprint}"[:255]


def pagerduty_payload(note: Notification, config: PagerDutyConfig) -> dict[str, Any]:
    alert = note.alert
    if alert.state != "firing":
        return {
            "routing_key": config.routing_key,
            "event_action": "resolve" if alert.state == "resolved" else "acknowledge",
            "dedup_key": dedup_key(note),
        }
    details: dict[str, Any] = {"message": alert.message, **alert.labels}
    if alert.value is not None:
        details["value"] = alert.value
    if alert.threshold is not None:
        details["threshold"] = alert.threshold
    if alert.recommendations:
        details["recommendations"] = alert.recommendations
    links = [{"href": u, "text": t} for t, u in alert.links.items()]
    if alert.runbook_url:
        links.insert(0, {"href": alert.runbook_url, "text": "Runbook"})
    return {
        "routing_key": config.routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(note),
        "payload": {
            "summary": note.title[:1024],
            "source": config.source,
            "severity": alert.severity,  # critical, warning, info are PagerDuty's names too
            "timestamp": alert.started_at.isoformat(),
            "component": alert.service,
            "group": alert.tenant,
            "class": alert.category or alert.rule,
            "custom_details": details,
        },
        "links": links,
    }


class PagerDutyChannel:
    type: ClassVar[str] = "pagerduty"
    description: ClassVar[str] = (
        "PagerDuty Events API v2: trigger, acknowledge, resolve; stable dedup_key"
    )

    async def send(self, note: Notification, config: PagerDutyConfig, ctx: SendContext) -> int:
        url = config.base_url.rstrip("/") + "/v2/enqueue"
        return await post_json(ctx, url, pagerduty_payload(note, config), {}, config.timeout)
