"""Rule definitions as they appear in the YAML configuration."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Annotated

import msgspec

from schemas import CheckResult, Severity, Status
from shared.configbase import ConfigStruct, Seconds

Count = Annotated[int, msgspec.Meta(ge=1, le=10_000)]


class Selector(ConfigStruct, frozen=True, kw_only=True):
    """Which series a rule watches; each field is a shell-style pattern."""

    tenant: str = "*"
    service: str = "*"
    check: str = "*"

    def matches(self, result: CheckResult) -> bool:
        return (
            fnmatchcase(result.tenant, self.tenant)
            and fnmatchcase(result.service, self.service)
            and fnmatchcase(result.check, self.check)
        )


class ConsecutiveRule(ConfigStruct, frozen=True, kw_only=True, tag="consecutive", tag_field="type"):
    """Fire after ``failures`` failing results in a row; resolve after ``successes`` passing.

    A result fails when its status is in ``failing``. After a resolve the same
    series cannot fire again before ``cooldown`` has passed.
    """

    name: str
    match: Selector = Selector()
    failures: Count = 3
    successes: Count = 1
    failing: frozenset[Status] = frozenset({"unhealthy"})
    cooldown: Seconds = Seconds(0)
    severity: Severity = "critical"
    title: str = "{check} is failing"


AnyRule = ConsecutiveRule
