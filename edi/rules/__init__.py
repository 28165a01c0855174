"""Business edits (SNIP 3-7 style): the carrier's own checks, run before a file leaves.

A pure stage between mapping and writing: a family's member loops, the carrier profile and the
as-of date in, findings out (`edi.rules.checks`); `edi.rules.stage.screen` applies them to a
run (fail or quarantine); `edi.rules.readback` judges any 834 by reading its families back.
"""

from edi.rules.checks import DEFAULT_SEVERITY, RULES, Family, RuleContext, check_family
from edi.rules.findings import Finding, Severity, WarningGroups
from edi.rules.stage import RulesReport, screen

__all__ = [
    "DEFAULT_SEVERITY",
    "RULES",
    "Family",
    "Finding",
    "RuleContext",
    "RulesReport",
    "Severity",
    "WarningGroups",
    "check_family",
    "screen",
]
