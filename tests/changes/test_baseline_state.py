"""A member stored in the baseline comes back equal, whatever it holds; otherwise every change
file would report it as changed."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from edi.baseline import member_from_state, member_state
from edi.members import CoverageLine, Member, Person

texts = st.text(max_size=12)
days = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
amounts = st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False)
codes = st.sampled_from(["021", "024", "001", "030"])

lines = st.builds(
    CoverageLine,
    coverage_id=texts,
    lookup_code=texts,
    status=st.sampled_from(["active", "future", "terminated", "election-ended", "declined"]),
    maintenance=codes,
    insurance_line=texts,
    plan_code=texts,
    level=st.none() | texts,
    begin=st.none() | days,
    end=st.none() | days,
    premium=st.none() | amounts,
    refs=st.lists(st.tuples(texts, texts), max_size=2).map(tuple),
    reason=st.none() | texts,
    volume=st.none() | amounts,
)
members = st.builds(
    Member,
    subscriber_id=texts,
    dependent_id=st.none() | texts,
    relationship=texts,
    maintenance=codes,
    reason=st.none() | texts,
    benefit_status=texts,
    employment_status=st.none() | texts,
    member_id=texts,
    group_number=st.none() | texts,
    person=st.builds(Person, last_name=texts, first_name=texts, birthdate=st.none() | days),
    dates=st.lists(st.tuples(texts, days), max_size=3).map(tuple),
    coverages=st.lists(lines, max_size=3).map(tuple),
)


@given(members)
def test_a_member_survives_the_baseline(member: Member) -> None:
    back = member_from_state(member_state(member))
    assert back == member
    assert all(isinstance(line.volume, Decimal | None) for line in back.coverages)


def test_state_is_sorted_json_of_every_field() -> None:
    """The stored form is plain JSON (stable across versions), dates ISO, amounts as text."""
    line = CoverageLine(
        coverage_id="7",
        lookup_code="unum_life",
        status="active",
        maintenance="021",
        insurance_line="AG",
        plan_code="P1",
        level="EMP",
        begin=date(2026, 1, 1),
        end=None,
        premium=Decimal("12.50"),
        volume=Decimal("10000"),
    )
    member = Member(
        "1", None, "18", "021", None, "A", "FT", "E1", None, Person("L", "F"), (), (line,)
    )
    state = json.loads(member_state(member))
    assert list(state) == sorted(state)
    assert state["coverages"][0]["volume"] == "10000"
    assert state["coverages"][0]["begin"] == "2026-01-01"
