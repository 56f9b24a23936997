"""The one registry of monitor types: adding a type touches its module and this file."""

from __future__ import annotations

from services.probe.monitors.base import CheckConfig, Monitor, Outcome, ProbeContext
from services.probe.monitors.http import HttpCheck, HttpMonitor
from services.probe.monitors.tcp import TcpCheck, TcpMonitor

AnyCheck = HttpCheck | TcpCheck

MONITORS: dict[str, Monitor] = {m.type: m for m in (HttpMonitor(), TcpMonitor())}

__all__ = ["MONITORS", "AnyCheck", "CheckConfig", "Monitor", "Outcome", "ProbeContext"]
