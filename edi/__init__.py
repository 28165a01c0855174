"""PlanSource coverages to validated ANSI X12 834 enrollment files."""

__version__ = "0.1.0"
