"""Tables and times for people and for pipes.

On a terminal a table is a rich table; when stdout is a pipe or a file it is tab-separated
lines (a header, then one line per row) that never truncate or wrap, so `grep`, `cut` and
`sort` see every value. An empty table is one "no entries" line on stderr, never an empty
frame. Times are shown in the user's own zone (`Mon 7 Dec 02:00 EST`); JSON keeps ISO 8601.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text


def clean(value: object) -> str:
    """A cell for a tab-separated line: no tabs or newlines inside a value."""
    text = "-" if value is None or value == "" else str(value)
    return " ".join(text.split()) if any(c in text for c in "\t\r\n") else text


def render_table(
    out: Console,
    err: Console,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    empty: str = "no entries",
    right: Sequence[str] = (),
) -> None:
    if not rows:
        err.print(f"{title}: {empty}", markup=False, highlight=False, soft_wrap=True)
        return
    if not out.is_terminal:
        # Straight to the stream: rich would expand the tabs to spaces.
        for line in (columns, *rows):
            out.file.write("\t".join(clean(v) for v in line) + "\n")
        out.file.flush()
        return
    table = Table(title=Text(title))
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", overflow="fold")
    for row in rows:
        # Plain text cells: a hint like "Set [alerts] email_to" is not rich markup.
        table.add_row(*(Text(clean(v)) for v in row))
    out.print(table)


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def local_time(value: str | datetime | None, now: datetime | None = None) -> str:
    """`Mon 7 Dec 02:00 EST` in the user's zone (TZ); the year only when it is not this year's."""
    moment = parse_time(value)
    if moment is None:
        return "-" if not value else str(value)
    local = moment.astimezone() if moment.tzinfo else moment
    current_year = (now or datetime.now(local.tzinfo)).astimezone(local.tzinfo).year
    year = f" {local.year}" if local.year != current_year else ""
    zone = f" {local.tzname()}" if local.tzinfo else ""
    return f"{local:%a} {local.day} {local:%b}{year} {local:%H:%M}{zone}"
