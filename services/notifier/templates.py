"""Message templates (jinja2, sandboxed): defaults, per-route overrides, rendering.

Templates come from the configuration file, so they run in jinja2's sandbox. A
syntax error is a configuration error; rendering gets the alert's fields by name.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Any

import msgspec
from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from schemas import AlertEvent
from shared.configbase import ConfigStruct

# Resolved is green and acknowledged grey whatever the severity; firing takes the
# severity's colour.
COLORS = {
    "critical": "#D93F0B",
    "warning": "#F2A900",
    "info": "#1F78D1",
    "resolved": "#2EB886",
    "acknowledged": "#8E8E8E",
}

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


# Shared by every notification without overrides: building one per send checked the
# (absent) templates each time, ~5 % of the notifier's Python time.
_DEFAULTS = Templates()


class Notification:
    """One alert event as a channel sends it: the event and its texts, rendered on first
    use (the generic webhook sends the event itself and never renders anything)."""

    def __init__(
        self, alert: AlertEvent, templates: Templates | None = None, test: bool = False
    ) -> None:
        self.alert, self.templates, self.test = alert, templates or _DEFAULTS, test

    @cached_property
    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = msgspec.structs.asdict(self.alert)
        return fields | {"alert": self.alert, "color": self.color, "test": self.test}

    @cached_property
    def title(self) -> str:
        title = _compile(self.templates.title or DEFAULT_TITLE, False).render(self._fields)
        return f"[TEST] {title.strip()}" if self.test else title.strip()

    @cached_property
    def text(self) -> str:
        source = self.templates.text or DEFAULT_TEXT
        return str(_compile(source, False).render(self._fields)).strip()

    @cached_property
    def html(self) -> str:
        fields = self._fields | {"heading": self.title}
        return str(_compile(self.templates.html or DEFAULT_HTML, True).render(fields)).strip()

    @property
    def color(self) -> str:
        return color_of(self.alert)


def color_of(alert: AlertEvent) -> str:
    return COLORS[alert.severity if alert.state == "firing" else alert.state]


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
    """Render title, text and HTML of ``alert`` now; raises jinja2 errors for a bad template."""
    note = Notification(alert, templates, test)
    _ = note.title, note.text, note.html
    return note
