"""Server-rendered charts: inline SVG, so the dashboard needs no script library."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from markupsafe import Markup

from services.console.health_read import Series

WIDTH, HEIGHT, PAD = 640, 180, 32
COLOURS = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2")


def _scale(value: float, low: float, high: float, size: float) -> float:
    return 0.0 if high <= low else (value - low) / (high - low) * size


def latency_chart(series: Sequence[Series], since: datetime, until: datetime) -> Markup:
    """p95 latency per check and hour as polylines, with the max on the y axis."""
    points = [
        (s.check, [(p.at, p.p95_ms) for p in s.points if p.p95_ms is not None]) for s in series
    ]
    top = max((v for _, ps in points for _, v in ps), default=0.0) or 1.0
    span_x, span_y = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    start, end = since.timestamp(), until.timestamp()
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="p95 latency per hour">',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'class="axis"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" class="axis"/>',
        f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end">{top:.0f}</text>',
        f'<text x="{PAD - 4}" y="{HEIGHT - PAD}" text-anchor="end">0</text>',
        f'<text x="{PAD}" y="{HEIGHT - 8}">{since:%m-%d %H:%M}</text>',
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" text-anchor="end">'
        f"{until:%m-%d %H:%M} UTC</text>",
    ]
    for i, (check, ps) in enumerate(points):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(
            f"{PAD + _scale(at.timestamp(), start, end, span_x):.1f},"
            f"{HEIGHT - PAD - _scale(v, 0.0, top, span_y):.1f}"
            for at, v in ps
        )
        if coords:
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}">'
                f"<title>{escape(check)} p95 ms</title></polyline>"
            )
        parts.append(
            f'<text x="{WIDTH - PAD}" y="{PAD + 14 * i}" text-anchor="end" '
            f'fill="{colour}">{escape(check)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
