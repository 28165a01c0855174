"""Split one interchange into independently valid pieces at member (INS) boundaries.

Each piece is the file's own header, a run of whole member loops, and the file's own trailer
with SE01 set to the piece's own segment count; the whole file's SE01 is judged once, from
`Split.se_count_problem`. `position_in_file` maps a piece's segment numbers back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from edi.x12.reader import Separators, raw_segments


@dataclass(slots=True)
class Piece:
    path: Path
    first_member_segment: int = 0  # members of the whole file before this piece
    member_segments: int = 0


@dataclass(slots=True)
class Split:
    header_segments: int
    member_segments: int
    pieces: list[Piece] = field(default_factory=list)
    st_position: int = 3
    se_elements: list[str] = field(default_factory=list)

    @property
    def se_position(self) -> int:
        return self.header_segments + self.member_segments + 1

    def se_count_problem(self) -> str | None:
        """pyx12's own words when the whole file's SE01 is not its ST..SE segment count."""
        counted = self.se_position - self.st_position + 1
        se01 = self.se_elements[1] if len(self.se_elements) > 1 else ""
        se02 = self.se_elements[2] if len(self.se_elements) > 2 else ""
        if se01.strip().isdigit() and int(se01) == counted:
            return None
        return f"SE count of {se01} for SE02={se02} is wrong. I count {counted}"

    def position_in_file(self, piece: Piece, line: int) -> int:
        """pyx12's 1-based segment number in a piece → the same segment in the whole file."""
        if line <= self.header_segments:
            return line
        if line <= self.header_segments + piece.member_segments:
            return line + piece.first_member_segment
        return line + self.member_segments - piece.member_segments


def split_interchange(path: Path, pieces: int, directory: Path) -> Split | None:
    """The pieces, or None when the file is not one ISA/GS/ST with member loops."""
    sep, segments = raw_segments(path)
    header: list[str] = []
    trailer: list[str] = []
    target = max(1, path.stat().st_size // pieces)
    split = Split(header_segments=0, member_segments=0)
    handles: list[TextIO] = []
    written = 0
    try:
        for raw in segments:
            seg_id = raw.split(sep.element, 1)[0]
            if trailer or seg_id in ("SE", "GE", "IEA"):
                trailer.append(raw)
            elif seg_id in ("ISA", "GS", "ST") and split.pieces:
                return None  # several transactions: validate the file whole
            elif seg_id == "INS" and (not handles or written >= target):
                handles.append(_open_piece(split, header, sep, directory))
                written = 0
            if trailer or not handles:
                if not trailer:
                    header.append(raw)
                continue
            handles[-1].write(f"{raw}{sep.segment}\n")
            written += len(raw) + 2
            split.pieces[-1].member_segments += 1
            split.member_segments += 1
        if not split.pieces or [t.split(sep.element, 1)[0] for t in trailer] != ["SE", "GE", "IEA"]:
            return None
        split.header_segments = len(header)
        ids = [h.split(sep.element, 1)[0] for h in header]
        split.st_position = ids.index("ST") + 1 if "ST" in ids else 1
        split.se_elements = trailer[0].split(sep.element)
        for piece, handle in zip(split.pieces, handles, strict=True):
            own_count = split.header_segments - split.st_position + 1 + piece.member_segments + 1
            for text in _piece_trailer(trailer, sep.element, own_count):
                handle.write(f"{text}{sep.segment}\n")
        return split
    finally:
        for handle in handles:
            handle.close()


def _open_piece(split: Split, header: list[str], sep: Separators, directory: Path) -> TextIO:
    piece = Piece(directory / f"piece-{len(split.pieces)}.x12", split.member_segments)
    split.pieces.append(piece)
    handle = piece.path.open("w", encoding="ascii", newline="")
    handle.writelines(f"{h}{sep.segment}\n" for h in header)
    return handle


def _piece_trailer(trailer: list[str], element: str, se01: int) -> list[str]:
    se = trailer[0].split(element)
    return [element.join([se[0], str(se01), *se[2:]]), *trailer[1:]]
