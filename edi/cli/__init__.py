"""`edi`, the command line: one module per command group (edi.cli.files, .delivery, .log ...),
assembled in edi.cli.root; what they share is edi.cli.common."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> None:
    from edi.cli.root import main as run

    run(argv)
