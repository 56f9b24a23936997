"""The one registry of monitor types: adding a type touches its module and this file."""

from __future__ import annotations

from services.probe.monitors.base import CheckConfig, Monitor, Outcome, ProbeContext
from services.probe.monitors.dns import DnsCheck, DnsMonitor
from services.probe.monitors.heartbeat import HeartbeatCheck, HeartbeatMonitor
from services.probe.monitors.http import HttpCheck, HttpMonitor
from services.probe.monitors.mcp import McpCheck, McpMonitor
from services.probe.monitors.postgres import PostgresCheck, PostgresMonitor
from services.probe.monitors.prometheus import PrometheusCheck, PrometheusMonitor
from services.probe.monitors.queue import QueueCheck, QueueMonitor
from services.probe.monitors.redis import RedisCheck, RedisMonitor
from services.probe.monitors.smtp import SmtpCheck, SmtpMonitor
from services.probe.monitors.statuspage import StatuspageCheck, StatuspageMonitor
from services.probe.monitors.stream_lag import StreamLagCheck, StreamLagMonitor
from services.probe.monitors.tcp import TcpCheck, TcpMonitor
from services.probe.monitors.tls import TlsCheck, TlsMonitor
from services.probe.monitors.websocket import WebsocketCheck, WebsocketMonitor

AnyCheck = (
    HttpCheck
    | TcpCheck
    | DnsCheck
    | TlsCheck
    | PostgresCheck
    | RedisCheck
    | StreamLagCheck
    | QueueCheck
    | PrometheusCheck
    | HeartbeatCheck
    | StatuspageCheck
    | SmtpCheck
    | WebsocketCheck
    | McpCheck
)

MONITORS: dict[str, Monitor] = {
    m.type: m
    for m in (
        HttpMonitor(),
        TcpMonitor(),
        DnsMonitor(),
        TlsMonitor(),
        PostgresMonitor(),
        RedisMonitor(),
        StreamLagMonitor(),
        QueueMonitor(),
        PrometheusMonitor(),
        HeartbeatMonitor(),
        StatuspageMonitor(),
        SmtpMonitor(),
        WebsocketMonitor(),
        McpMonitor(),
    )
}

__all__ = ["MONITORS", "AnyCheck", "CheckConfig", "Monitor", "Outcome", "ProbeContext"]
