"""The rule registry: every rule type, as it appears in the YAML configuration.

Adding a type means one module in ``kinds/`` and one name in ``AnyRule``.
"""

from __future__ import annotations

from services.evaluator.kinds.absence import AbsenceRule
from services.evaluator.kinds.application import ApplicationErrorRule
from services.evaluator.kinds.consecutive import ConsecutiveRule
from services.evaluator.kinds.slo import SloRule
from services.evaluator.kinds.threshold import ThresholdRule
from services.evaluator.rulebase import Rule, Selector

AnyRule = ConsecutiveRule | ThresholdRule | AbsenceRule | ApplicationErrorRule | SloRule

__all__ = [
    "AbsenceRule",
    "AnyRule",
    "ApplicationErrorRule",
    "ConsecutiveRule",
    "Rule",
    "Selector",
    "SloRule",
    "ThresholdRule",
]
