"""The counts a generate or run prints on stderr, and the business edits' findings."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from edi.cli.common import err

SUMMARY_KEYS = (
    "members",
    "subscribers",
    "dependents",
    "additions",
    "changes",
    "terminations",
    "coverage_lines",
    "elections_ended",
    "declines_skipped",
    "declines_sent",
    "future_coverages",
    "test_employees_skipped",
    "segments",
)


def print_summary(summary: dict[str, Any]) -> None:
    """A generate/run summary on stderr (stdout carries the file's path)."""
    from edi.output import render_table

    keys = [*SUMMARY_KEYS]
    for extra in ("disappearances", "reinstatements"):
        if extra in summary:
            keys.insert(keys.index("terminations") + 1, extra)
    rows: list[tuple[str, object]] = [(k.replace("_", " "), summary[k]) for k in keys]
    rows += [(f"skipped: {reason}", count) for reason, count in summary.get("skipped", {}).items()]
    if summary.get("held"):
        rows.append(("held subscribers (quarantine)", summary["held_subscribers"]))
        rows.append(("held member loops", summary["held_members"]))
    rows += [(f"warning: {group['code']}", group["count"]) for group in summary.get("warnings", [])]
    render_table(
        err,
        err,
        f"{summary['carrier']}: {summary['file_type']} 834, ISA13 {summary['isa13']}",
        ("", "count"),
        rows,
        right=("count",),
    )


def print_rule_findings(summary: dict[str, Any]) -> None:
    """Held families with their findings' ids, then warnings grouped by code (first ids)."""
    for held in summary.get("held", []):
        codes = ", ".join(sorted({f["code"] for f in held["findings"]}))
        err.print(
            f"[yellow]held:[/] subscriber id={escape(held['subscriber_id'])}: {escape(codes)}",
            soft_wrap=True,
            highlight=False,
        )
        for finding in held["findings"]:
            ids = [
                f"{name.replace('_id', '')} id={finding[name]}"
                for name in ("dependent_id", "coverage_id")
                if finding[name]
            ]
            err.print(
                f"  [{finding['code']}] {finding['severity']} {', '.join(ids)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    for group in summary.get("warnings", []):
        first = ", ".join(
            "/".join(
                f"{name.replace('_id', '')} id={f[name]}"
                for name in ("subscriber_id", "dependent_id", "coverage_id")
                if f[name]
            )
            for f in group["first"][:5]
        )
        err.print(
            f"warning [{group['code']}] x{group['count']}: {group['message']} (first: {first})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    unclaimed = summary.get("unclaimed_coverages", {})
    if unclaimed.get("count"):
        listed = ", ".join(unclaimed["coverage_ids"][:20])
        more = unclaimed["count"] - min(20, len(unclaimed["coverage_ids"]))
        err.print(
            f"unclaimed coverages (no profile claims their lookup code): {unclaimed['count']}: "
            f"coverage ids {listed}" + (f" and {more} more" if more > 0 else ""),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
