"""The read-only operations console (`edi serve`): server-rendered pages and JSON for benefits
operations staff and auditors. It reads the delivery log, the profiles, the schedules, the
reconciliation's discrepancies and the change preview; it never sends, resets or resolves.

`edi.console.data` gathers the facts (PlanSource ids, codes and counts, never PHI);
`edi.console.app` serves them (starlette); `edi.console.summary` reads an 834 for its ids and
codes. Only `edi serve` imports this package, so `edi generate` never loads starlette.
"""
