"""The family comparison on its own: small hand-made families, one rule each."""

from __future__ import annotations

from datetime import date

from edi.reconcile import CompareContext, FamilyComparer, OurLine, OurMember
from edi.roster import RosterLine, RosterMember

AS_OF = date(2026, 11, 24)
JAN = date(2026, 1, 1)


def ours(*lines: OurLine, dependent: str | None = None, rel: str = "18") -> OurMember:
    return OurMember(
        "100", dependent, rel, "Doe", "Jan", "900112222" if rel == "18" else None,
        date(1980, 1, 2), "F", "1 Main St", "Columbia", "SC", "29201", list(lines),
    )  # fmt: skip


def theirs(
    *lines: RosterLine, rel: str = "18", position: int = 1, **fields: object
) -> RosterMember:
    values: dict[str, object] = {
        "last_name": "DOE",
        "first_name": "JAN",
        "ssn": "900112222" if rel == "18" else None,
        "birthdate": date(1980, 1, 2),
        "gender": "F",
    }
    values.update(fields)
    return RosterMember(position, "E100", rel, "030", lines=list(lines), **values)  # type: ignore[arg-type]


def line(plan: str = "ACCIDENT-1", end: date | None = None, status: str = "active") -> OurLine:
    return OurLine("c1", "AH", plan, "EMP", JAN, end, status)


def carrier_line(
    plan: str = "ACCIDENT-1", end: date | None = None, hd01: str = "030"
) -> RosterLine:
    return RosterLine(hd01, "AH", plan, "EMP", JAN, end)


def kinds(
    our: list[OurMember], their: list[RosterMember], **ctx: object
) -> list[tuple[str, str | None, str | None]]:
    comparer = FamilyComparer(CompareContext("c", AS_OF, **ctx))  # type: ignore[arg-type]
    return sorted((d.kind, d.field, d.coverage_id) for d in comparer.family("E100", our, their))


def test_the_same_member_has_no_discrepancy() -> None:
    assert kinds([ours(line())], [theirs(carrier_line())]) == []


def test_ended_on_both_sides_is_no_discrepancy_and_missing_ended_lines_are_fine() -> None:
    ended = line(end=date(2026, 10, 31), status="terminated")
    assert kinds([ours(ended)], [theirs(carrier_line(end=date(2026, 10, 31), hd01="024"))]) == []
    assert kinds([ours(ended)], []) == []
    assert kinds([ours(ended, line("CANCER-1"))], [theirs(carrier_line("CANCER-1"))]) == []


def test_end_dates_and_carrier_terminations() -> None:
    ended = line(end=date(2026, 10, 31), status="terminated")
    assert kinds([ours(ended)], [theirs(carrier_line(end=date(2026, 11, 30)))]) == [
        ("effective-date-mismatch", "349", "c1")
    ]
    assert kinds([ours(line())], [theirs(carrier_line(end=date(2026, 6, 30), hd01="024"))]) == [
        ("missing-at-carrier", None, "c1")
    ]
    assert kinds([ours(line())], [theirs(carrier_line(end=date(2026, 12, 31)))]) == [
        ("effective-date-mismatch", "349", "c1")
    ]


def test_lines_only_one_side_has() -> None:
    assert kinds([ours(line())], [theirs(carrier_line(), carrier_line("CANCER-1"))]) == [
        ("unexpected-at-carrier", None, None)
    ]
    assert kinds([ours(line(), line("CANCER-1"))], [theirs(carrier_line())]) == [
        ("missing-at-carrier", None, "c1")
    ]
    # the carrier's ended extra line is not a discrepancy
    assert kinds([ours(line())], [theirs(carrier_line(), carrier_line("X", hd01="024"))]) == []


def test_dependents_match_by_ssn_or_by_name_and_birthdate() -> None:
    child = ours(line(), dependent="7", rel="19")
    child.ssn = "900334444"
    renamed = theirs(carrier_line(), rel="19", position=2, ssn="900334444", first_name="JANE")
    assert kinds([child], [renamed]) == [("demographic-mismatch", "name", None)]
    child.ssn = None
    assert kinds([child], [theirs(carrier_line(), rel="19", position=2)]) == []
    # another relationship is another person: missing here, unexpected there
    assert kinds([child], [theirs(carrier_line(), rel="01", position=2)]) == [
        ("missing-at-carrier", None, None),
        ("unexpected-at-carrier", None, None),
    ]


def test_census_rows_of_one_person_are_merged() -> None:
    rows = [theirs(carrier_line(), position=2), theirs(carrier_line("CANCER-1"), position=3)]
    assert kinds([ours(line(), line("CANCER-1"))], rows) == []


def test_ids_are_stable_and_masked_when_the_member_id_is_the_ssn() -> None:
    ctx = CompareContext("c", AS_OF, mask_member_id=True)
    found = list(FamilyComparer(ctx).family("900112222", [ours(line())], []))
    assert found[0].member_id == "XXXXX2222"
    again = list(FamilyComparer(ctx).family("900112222", [ours(line())], []))
    assert [d.id for d in found] == [d.id for d in again]
    other = CompareContext("other", AS_OF, mask_member_id=True)
    moved = next(iter(FamilyComparer(other).family("900112222", [ours(line())], [])))
    assert moved.id != found[0].id


def test_severity_defaults_and_overrides() -> None:
    moved = theirs(carrier_line(), gender="M")
    assert [
        d.severity
        for d in FamilyComparer(CompareContext("c", AS_OF)).family("E100", [ours(line())], [moved])
    ] == ["warning"]
    strict = CompareContext("c", AS_OF, severity={"demographic-mismatch:gender": "error"})
    assert [d.severity for d in FamilyComparer(strict).family("E100", [ours(line())], [moved])] == [
        "error"
    ]
