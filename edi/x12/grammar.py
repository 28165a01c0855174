"""005010X220A1 as data, read from pyx12's own map so the writer and the validator agree.

For each (loop, segment id) the guide's variants, each a tuple of element specs: reference
(`INS03`), data type, min/max length, usage, and allowed codes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

MAP_FILE = "834.5010.X220.A1.xml"


@dataclass(frozen=True, slots=True)
class ElementSpec:
    ref: str
    data_type: str
    min_len: int
    max_len: int
    required: bool
    codes: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class SyntaxRule:
    """An X12 relational condition: P paired, R required (one of), E exclusion,
    C conditional (if first then all), L list conditional (if first then one of the rest)."""

    kind: str
    positions: tuple[int, ...]  # 1-based element positions

    def problem(self, present: set[int]) -> str | None:
        first, rest = self.positions[0], self.positions[1:]
        hits = [p for p in self.positions if p in present]
        if self.kind == "P" and hits and len(hits) != len(self.positions):
            return "must all be present or all absent"
        if self.kind == "R" and not hits:
            return "needs at least one of them"
        if self.kind == "E" and len(hits) > 1:
            return "allows only one of them"
        if self.kind == "C" and first in present and not all(p in present for p in rest):
            return "needs the others when the first is present"
        if self.kind == "L" and first in present and not any(p in present for p in rest):
            return "needs one of the others when the first is present"
        return None


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    loop: str
    seg_id: str
    elements: tuple[ElementSpec | None, ...]  # None: a composite or unused position
    rules: tuple[SyntaxRule, ...] = ()

    def qualifier_codes(self) -> frozenset[str] | None:
        first = self.elements[0] if self.elements else None
        return first.codes if first else None


def _map_root(name: str) -> ET.Element:
    return ET.fromstring(files("pyx12").joinpath("map", name).read_bytes())


@cache
def _data_elements() -> dict[str, tuple[str, int, int]]:
    root = _map_root("dataele.xml")
    return {
        e.get("ele_num", ""): (
            e.get("data_type", "AN"),
            int(e.get("min_len", "0")),
            int(e.get("max_len", "0")),
        )
        for e in root.iter("data_ele")
    }


def _element(node: ET.Element, dictionary: dict[str, tuple[str, int, int]]) -> ElementSpec:
    data_type, min_len, max_len = dictionary.get(node.findtext("data_ele", ""), ("AN", 0, 999))
    codes = [c.text or "" for c in node.findall("valid_codes/code")]
    return ElementSpec(
        ref=node.get("xid", ""),
        data_type=data_type,
        min_len=min_len,
        max_len=max_len,
        required=node.findtext("usage") == "R",
        codes=frozenset(codes) if codes else None,
    )


def _rule(text: str) -> SyntaxRule:
    digits = text[1:]
    return SyntaxRule(text[0], tuple(int(digits[i : i + 2]) for i in range(0, len(digits), 2)))


def _segment(
    loop: str, node: ET.Element, dictionary: dict[str, tuple[str, int, int]]
) -> SegmentSpec:
    elements: list[ElementSpec | None] = []
    for child in node:
        if child.tag == "element":
            elements.append(_element(child, dictionary))
        elif child.tag == "composite":
            elements.append(None)
    rules = tuple(_rule(r.text) for r in node.findall("syntax") if r.text)
    return SegmentSpec(loop, node.get("xid", ""), tuple(elements), rules)


@cache
def grammar() -> dict[tuple[str, str], tuple[SegmentSpec, ...]]:
    dictionary = _data_elements()
    table: dict[tuple[str, str], list[SegmentSpec]] = {}

    def walk(loop: ET.Element) -> None:
        loop_id = loop.get("xid", "")
        for child in loop:
            if child.tag == "segment":
                spec = _segment(loop_id, child, dictionary)
                table.setdefault((loop_id, spec.seg_id), []).append(spec)
            elif child.tag == "loop":
                walk(child)

    walk(_map_root(MAP_FILE))
    return {key: tuple(variants) for key, variants in table.items()}


def segment_spec(loop: str, seg_id: str, qualifier: str | None) -> SegmentSpec:
    """The guide's variant of a segment in a loop, chosen by its first element when several."""
    variants = grammar()[(loop, seg_id)]
    if len(variants) == 1:
        return variants[0]
    for variant in variants:
        codes = variant.qualifier_codes()
        if codes is not None and qualifier in codes:
            return variant
    return variants[0]
