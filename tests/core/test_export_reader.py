"""The export directory reader: three container shapes, lenient dates, masked SSNs, extras."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from edi.errors import SourceDataError
from edi.plansource.export import read_export
from edi.plansource.models import Coverage, Subscriber, normalize_code, parse_date, real_ssn
from tests.support.workspace import ExportBuilder


def envelope(records: list[dict[str, object]]) -> dict[str, object]:
    return {"status": "success", "errors": [], "data": records}


@pytest.mark.parametrize("shape", ["array", "envelope", "pages"])
def test_container_shapes(export: ExportBuilder, shape: str, tmp_path: Path) -> None:
    for sid in range(1, 6):
        export.subscriber(sid)
    root = export.write()
    records = export.subscribers
    document = {
        "array": records,
        "envelope": envelope(records),
        "pages": [envelope(records[:2]), envelope(records[2:4]), envelope(records[4:])],
    }[shape]
    (root / "subscribers.json").write_text(json.dumps(document))
    with read_export(root, tmp_path) as data:
        assert [group.subscriber.id for group in data.groups()] == ["1", "2", "3", "4", "5"]
        assert len(data) == 5


def test_failure_envelope_is_refused(export: ExportBuilder, tmp_path: Path) -> None:
    root = export.write()
    failure = {"status": "failure", "errors": {"message": "nope"}, "data": []}
    (root / "coverages.json").write_text(json.dumps(failure))
    with pytest.raises(SourceDataError, match=r"coverages\.json"):
        read_export(root, tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026/01/05", date(2026, 1, 5)),
        ("2026-01-05", date(2026, 1, 5)),
        ("2026-01-05T13:00:00Z", date(2026, 1, 5)),
        ("2026-01-05 08:00:00", date(2026, 1, 5)),
        ("", None),
        ("   ", None),
    ],
)
def test_lenient_dates(text: str, expected: date | None) -> None:
    assert parse_date(text) == expected


def test_masked_ssn_is_no_ssn() -> None:
    assert real_ssn("XXX-XX-8782") is None
    assert real_ssn("") is None
    assert real_ssn("912-34-5678") == "912345678"
    assert real_ssn("1234") is None


def test_extra_fields_kept_and_test_employee_flag() -> None:
    record = Subscriber.model_validate(
        {"id": 5, "first_name": "A", "last_name": "B", "future_field": 1, "test_employee": "true"}
    )
    assert record.test_employee is True and record.model_extra == {"future_field": 1}


def test_waiver_and_effective_date() -> None:
    waiver = Coverage.model_validate(
        {
            "id": 1,
            "subscriber_id": 2,
            "benefit_lookup_code": "x",
            "plan_name": "Decline",
            "coverage_level": "Decline",
            "original_effective_date": "2026/01/01",
            "change_effective_date": "2026/03/01",
        }
    )
    assert waiver.is_waiver and waiver.effective_date == date(2026, 3, 1)


def test_reason_codes_match_any_form() -> None:
    assert normalize_code("Employment Termination") == normalize_code("employment_termination")
    assert normalize_code("EMPLOYEE + CHILD(REN)") == "employee_child_ren"


def test_field_problems_are_all_listed_when_groups_end(
    export: ExportBuilder, tmp_path: Path
) -> None:
    export.subscriber(1, birthdate="31/31/31")
    export.subscriber(2)
    export.subscriber(3)
    del export.subscribers[1]["first_name"]
    export.coverage(30, 3, "colonial_accident_1", subscriber_premium="12,50x")
    export.coverage(31, 3, "unum_life_1", original_effective_date="2026/13/45")
    with read_export(
        export.write(), tmp_path, claims=lambda code: code.startswith("colonial")
    ) as data:
        handed_out = []
        with pytest.raises(SourceDataError) as raised:
            handed_out.extend(group.subscriber.id for group in data.groups())
    assert handed_out == []  # no group with an invalid record is handed out
    assert raised.value.details == (
        "subscriber id=1: birthdate: unreadable date",
        "subscriber id=2: first_name: missing required field",
        "coverage id=30: subscriber_premium: unreadable amount",
    )  # coverage 31 is not the claiming carrier's: neither kept nor judged


def test_problems_are_all_listed_by_id(export: ExportBuilder, tmp_path: Path) -> None:
    export.subscriber(1, birthdate="31/31/31")
    export.subscriber(2)
    del export.subscribers[-1]["first_name"]
    export.dependent(9, 77)
    with pytest.raises(SourceDataError) as raised:
        read_export(export.write(), tmp_path)
    details = "\n".join(raised.value.details)
    assert "subscriber id=1: birthdate" in details
    assert "subscriber id=2: first_name" in details
    assert "dependent id=9: subscriber_id=77 not found" in details


def test_groups_carry_each_subscribers_records_in_source_order(
    export: ExportBuilder, tmp_path: Path
) -> None:
    export.subscriber(2)
    export.subscriber(1)
    export.dependent(20, 1)
    export.dependent(21, 2)
    export.dependent(22, 1)
    export.coverage(30, 1, "colonial_accident_1", dependent_ids=[22, 20])
    with read_export(export.write(), tmp_path) as data:
        groups = {g.subscriber.id: g for g in data.groups()}
        assert list(groups) == ["2", "1"]
        assert [d.id for d in groups["1"].dependents] == ["20", "22"]
        assert [c.id for c in groups["1"].coverages] == ["30"] and not groups["2"].coverages
        assert groups["1"].coverages[0].dependent_ids == ("22", "20")


def test_streams_large_pages_without_loading_the_file(
    export: ExportBuilder, tmp_path: Path
) -> None:
    """Pages larger than the read block and records split across blocks still parse."""
    from edi.plansource import export as export_module

    for sid in range(1, 401):
        export.subscriber(sid, address_2="x" * 500)
    root = export.write()
    pages = [envelope(export.subscribers[i : i + 150]) for i in range(0, 400, 150)]
    (root / "subscribers.json").write_text(json.dumps(pages, indent=1))
    block, export_module.READ_BLOCK = export_module.READ_BLOCK, 4096
    try:
        with read_export(root, tmp_path) as data:
            assert len(data) == 400
    finally:
        export_module.READ_BLOCK = block


def test_truncated_json_is_refused(export: ExportBuilder, tmp_path: Path) -> None:
    export.subscriber(1)
    root = export.write()
    text = (root / "subscribers.json").read_text()
    (root / "subscribers.json").write_text(text[: len(text) // 2])
    with pytest.raises(SourceDataError, match="not valid JSON"):
        read_export(root, tmp_path)


def test_missing_directory_and_file(tmp_path: Path) -> None:
    with pytest.raises(SourceDataError, match="does not exist"):
        read_export(tmp_path / "nope", tmp_path)
    (tmp_path / "subscribers.json").write_text("[]")
    with pytest.raises(SourceDataError, match=r"dependents\.json is missing"):
        read_export(tmp_path, tmp_path)
