"""Reads any X12 interchange as segments, taking the delimiters from its ISA."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edi.errors import ValidationFailed

ISA_LENGTH = 106


@dataclass(frozen=True, slots=True)
class Separators:
    element: str
    component: str
    repetition: str
    segment: str


def separators(head: str) -> Separators:
    if not head.startswith("ISA") or len(head) < ISA_LENGTH:
        raise ValidationFailed("x12-not-interchange", "the file does not start with an ISA segment")
    return Separators(element=head[3], component=head[104], repetition=head[82], segment=head[105])


def segments_from_text(text: str) -> Iterator[list[str]]:
    stripped = text.lstrip()
    sep = separators(stripped)
    for raw in stripped.split(sep.segment):
        raw = raw.strip("\r\n ")
        if raw:
            yield raw.split(sep.element)


def raw_segments(path: Path, block_size: int = 1 << 20) -> tuple[Separators, Iterator[str]]:
    """The file's separators and its segments as raw text (no terminator), streamed in blocks."""
    stream = path.open("r", encoding="ascii", errors="replace", newline="")
    try:
        head = stream.read(ISA_LENGTH)
        sep = separators(head.lstrip())
    except BaseException:
        stream.close()
        raise

    def generate() -> Iterator[str]:
        pending = head
        with stream:
            while True:
                block = stream.read(block_size)
                pending += block
                parts = pending.split(sep.segment)
                pending = parts.pop() if block else ""
                for raw in parts:
                    raw = raw.strip("\r\n ")
                    if raw:
                        yield raw
                if not block:
                    tail = pending.strip("\r\n ")
                    if tail:
                        yield tail
                    return

    return sep, generate()


def read_segments(path: Path, block_size: int = 1 << 20) -> Iterator[list[str]]:
    """Segments as element lists (`[seg_id, e01, e02, ...]`), streamed in blocks."""
    sep, segments = raw_segments(path, block_size)
    for raw in segments:
        yield raw.split(sep.element)
