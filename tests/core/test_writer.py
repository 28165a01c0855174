"""The writer: any text in any field still yields a file pyx12 accepts, with the element counts
the writer intended (delimiters in data never add or split elements or segments)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edi.members import CoverageLine, Member, Person
from edi.profiles import CarrierProfile, Delimiters
from edi.validate import validate_file
from edi.x12.writer import (
    ElementProblem,
    Envelope,
    SegmentSink,
    content_fingerprint,
    to_x12_text,
    write_body,
    write_file,
)
from tests.support.workspace import segments

ENVELOPE = Envelope(control_number=42, created_at=datetime(2026, 11, 24, 2, 0, tzinfo=UTC))
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
NAME = TEXT.filter(lambda t: any(c.isascii() and c.isalnum() for c in t))


def person(**fields: object) -> Person:
    base: dict[str, object] = {"last_name": "DOE", "first_name": "JANE"}
    base.update(fields)
    return Person(**base)  # type: ignore[arg-type]


def member(p: Person, dependent: bool = False) -> Member:
    line = CoverageLine(
        coverage_id="10",
        lookup_code="colonial_accident_1",
        status="active",
        maintenance="021",
        insurance_line="AH",
        plan_code="ACCIDENT-1",
        level="EMP",
        begin=date(2026, 1, 1),
        end=None,
    )
    return Member(
        subscriber_id="1",
        dependent_id="2" if dependent else None,
        relationship="19" if dependent else "18",
        maintenance="021",
        reason=None,
        benefit_status="A",
        employment_status=None if dependent else "FT",
        member_id="E1",
        group_number=None,
        person=p,
        dates=(("356", date(2026, 1, 1)),),
        coverages=(line,),
    )


def write(profile: CarrierProfile, members: list[Member], directory: Path) -> Path:
    body = write_body(members, profile, directory / "body")
    path = directory / "file.834"
    write_file(profile, "full", body, ENVELOPE, path)
    return path


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(last=NAME, first=NAME, middle=TEXT, address=NAME, address_2=TEXT, city=NAME, email=TEXT)
def test_any_text_yields_a_valid_file(
    colonial: CarrierProfile,
    tmp_path_factory: pytest.TempPathFactory,
    last: str,
    first: str,
    middle: str,
    address: str,
    address_2: str,
    city: str,
    email: str,
) -> None:
    p = person(
        last_name=last,
        first_name=first,
        middle_name=middle,
        address_1=address,
        address_2=address_2,
        city=city,
        email=email,
        ssn="912345678",
        birthdate=date(1980, 1, 1),
        phone="8035550100",
    )
    path = write(colonial, [member(p), member(p, dependent=True)], tmp_path_factory.mktemp("w"))
    report = validate_file(path, colonial)
    assert report.valid, [f.line() for f in report.findings]
    segs = segments(path)
    nm1 = [s for s in segs if s[0] == "NM1"]
    assert len(nm1) == 2 and all(len(s) == 10 for s in nm1), "NM101..NM109, nothing split"
    assert [s[0] for s in segs].count("INS") == 2
    assert ["SE", str(len(segs) - 4), "0001"] in segs


@pytest.mark.parametrize(
    "delimiters",
    [
        Delimiters(),
        Delimiters(element="|", component="\\", repetition="{", segment="\n", line_breaks=False),
    ],
)
def test_custom_delimiters_are_respected(
    colonial: CarrierProfile, tmp_path: Path, delimiters: Delimiters
) -> None:
    profile = colonial.model_copy(update={"delimiters": delimiters})
    p = person(last_name="O'BRIEN|SMITH\\JR{*~:^", address_1="1 MAIN", city="COLUMBIA")
    path = write(profile, [member(p)], tmp_path)
    text = path.read_text()
    assert text[3] == delimiters.element and text[104] == delimiters.component
    assert validate_file(path, profile).valid
    nm1 = next(s for s in segments(path) if s[0] == "NM1")
    chosen = (delimiters.element, delimiters.component, delimiters.repetition, delimiters.segment)
    assert nm1[3].startswith("O'BRIEN") and not any(d in nm1[3] for d in chosen)
    assert len(nm1) == 5, "the name stayed one element"


def test_isa_is_fixed_width_and_envelope_numbers_match(
    colonial: CarrierProfile, tmp_path: Path
) -> None:
    path = write(colonial, [member(person())], tmp_path)
    isa = path.read_text().split("\n")[0]
    assert len(isa) == 106 and isa.endswith("~")
    segs = segments(path)
    by_id = {s[0]: s for s in segs}
    assert by_id["ISA"][13] == "000000042" == by_id["IEA"][2]
    assert by_id["GS"][6] == "42" == by_id["GE"][2]
    assert by_id["ST"][2] == by_id["SE"][2] == "0001"
    assert by_id["GS"][8] == by_id["ST"][3] == "005010X220A1"


def test_required_element_empty_after_sanitizing_names_the_member(colonial: CarrierProfile) -> None:
    sink = SegmentSink(io.StringIO(), colonial.delimiters)
    with pytest.raises(ElementProblem) as problem:
        sink.segment("2100A", "NM1", "IL", "1", "*~^:", "JANE", where="subscriber id=7")
    assert "subscriber id=7" in str(problem.value) and "2100A/NM103" in str(problem.value)
    assert "*~^:" not in str(problem.value)


def test_code_outside_the_guide_is_refused(colonial: CarrierProfile) -> None:
    sink = SegmentSink(io.StringIO(), colonial.delimiters)
    with pytest.raises(ElementProblem, match="2000/INS03"):
        sink.segment("2000", "INS", "Y", "18", "099", None, "A", where="subscriber id=7")


def test_to_x12_text() -> None:
    assert to_x12_text("José O'Brien*Smith~Jr\t^x:y", Delimiters()) == "JOSE O'BRIEN SMITH JR X Y"


def test_fingerprint_ignores_envelope_but_not_content(
    colonial: CarrierProfile, tmp_path: Path
) -> None:
    a = write_body([member(person())], colonial, tmp_path / "a")
    b = write_body([member(person(last_name="ROE"))], colonial, tmp_path / "b")
    assert content_fingerprint(colonial, "full", a) != content_fingerprint(colonial, "full", b)
    assert content_fingerprint(colonial, "full", a) != content_fingerprint(colonial, "audit", a)
    again = write_body([member(person())], colonial, tmp_path / "c")
    assert content_fingerprint(colonial, "full", a) == content_fingerprint(colonial, "full", again)
