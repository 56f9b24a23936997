"""Message templates (jinja2, sandboxed): defaults, per-route overrides, rendering.

Templates come from the configuration file, so they run in jinja2's sandbox. A
syntax error is a configuration error; rendering gets the alert's fields by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec
from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from schemas import AlertEvent
from shared.configbase import ConfigStruct

# Resolved is green whatever the severity; firing takes the severity's colour.
COLORS = {"critical": "#D93F0B", "warning": "#F2A900", "info": "#1F78D1", "resolved": "#2EB886"}

DEFAULT_TITLE = (
    "[{{ state|upper }}{% if state == 'firing' %}:{{ severity }}{% endif %}] "
    "{{ tenant }}/{{ service }}: {{ title }}"
)
DEFAULT_TEXT = """\
{% if message %}{{ message }}
{% endif %}
{% if value is not none %}Value: {{ value|num }}{% if threshold is not none %} \
(threshold {{ threshold|num }}){% endif %}

{% endif %}
{% for r in recommendations %}- {{ r }}
{% endfor %}
{% if runbook_url %}Runbook: {{ runbook_url }}
{% endif %}
{% for name, url in links.items() %}{{ name }}: {{ url }}
{% endfor %}"""
DEFAULT_HTML = """\
<html><body>
<h2 style="color: {{ color }}">{{ heading }}</h2>
{% if message %}<p>{{ message }}</p>
{% endif %}
{% if value is not none %}<p>Value: <b>{{ value|num }}</b>\
{% if threshold is not none %} (threshold {{ threshold|num }}){% endif %}</p>
{% endif %}
{% if recommendations %}<ul>{% for r in recommendations %}<li>{{ r }}</li>{% endfor %}</ul>
{% endif %}
{% if runbook_url %}<p><a href="{{ runbook_url }}">Runbook</a></p>
{% endif %}
{% for name, url in links.items() %}<p><a href="{{ url }}">{{ name }}</a></p>
{% endfor %}
</body></html>"""


class Templates(ConfigStruct, frozen=True, kw_only=True):
    """Per-route overrides; an unset template uses the default."""

    title: str | None = None
    text: str | None = None
    html: str | None = None

    def __post_init__(self) -> None:
        for name in ("title", "text", "html"):
            source = getattr(self, name)
            if source is not None:
                try:
                    _compile(source, name == "html")
                except TemplateSyntaxError as exc:
                    raise ValueError(f"{name}: template syntax error: {exc.message}") from exc


@dataclass(frozen=True, slots=True)
class Notification:
    """One alert event as a channel sends it: the event and its rendered texts."""

    alert: AlertEvent
    title: str
    text: str
    html: str
    test: bool = False

    @property
    def color(self) -> str:
        return color_of(self.alert)


def color_of(alert: AlertEvent) -> str:
    return COLORS["resolved" if alert.state == "resolved" else alert.severity]


def _num(value: float) -> str:
    return f"{value:g}"


def _environment(html: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, autoescape=html, undefined=StrictUndefined
    )
    env.filters["num"] = _num
    return env


_ENVS = {False: _environment(False), True: _environment(True)}


@lru_cache(maxsize=256)
def _compile(source: str, html: bool) -> Template:
    return _ENVS[html].from_string(source)


def render(
    alert: AlertEvent, templates: Templates | None = None, test: bool = False
) -> Notification:
    """Render title, text and HTML of ``alert``; raises jinja2 errors for a bad template."""
    t = templates or Templates()
    fields: dict[str, Any] = msgspec.structs.asdict(alert)
    fields |= {"alert": alert, "color": color_of(alert), "test": test}
    title = _compile(t.title or DEFAULT_TITLE, False).render(fields).strip()
    if test:
        title = f"[TEST] {title}"
    text = _compile(t.text or DEFAULT_TEXT, False).render(fields).strip()
    html = _compile(t.html or DEFAULT_HTML, True).render(fields | {"heading": title}).strip()
    return Notification(alert, title, text, html, test)
