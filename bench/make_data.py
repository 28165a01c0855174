"""Deterministic PlanSource exports of any size, written as they are generated.

    python bench/make_data.py --employees 100000 --seed 7 --out bench/out/data-100k

Same seed, same bytes. Shape: ~1.3 dependents per employee, 2-5 products across the three
carriers (plus a non-carrier benefit) with coverage levels that agree with the dependents each
line lists, ~3 % employment terminations, waived declines with and
without an earlier election, future-dated coverages, mid-year changes, odd characters in names
and addresses, mixed date formats, masked dependent SSNs, a few test employees. Files are
arrays of PlanSource envelope pages (500 records each), the format `edi pull` writes.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

Record = dict[str, Any]
PAGE = 500
CARRIER_PRODUCTS = {
    "colonial": [
        "colonial_accident_1",
        "colonial_cancer_1",
        "colonial_critical_illness_0",
        "colonial_term_life_0",
        "colonial_hospital_confinement_0",
    ],
    "unum": [
        "unum_group_accident_employee",
        "unum_group_critical_illness_employee",
        "unum_vwb_std_employee",
        "unum__whole_life_employee",
    ],
    "allstate": [
        "allstate_accident",
        "allstate_cancer",
        "allstate_critical_illness",
        "allstate_grp_term_to_100",
    ],
}
FIRST = ["Avery", "Jordan", "Zoë", "Morgan", "Seán", "Quinn", "Rowan", "José", "Harper", "Logan"]
LAST = ["O'Brien", "Smith*Jones", "García", "Nakamura", "Okafor~Bell", "Petrov", "Lindqvist"]
STREETS = ["Maple Ave", "Cedar Ln: Unit ^2", "Harbor Rd", "Summit St #4", "Willow Ct"]
REASONS = ["Employment Termination", "employment_termination", "EMPLOYMENT-TERMINATION"]
SPOUSES = ("spouse", "domestic_partner")
# Who a plan covers (issue 18): one-person products list no dependents; an employee plan beside
# a separate spouse plan covers the employee and children only.
EMPLOYEE_ONLY = {"unum_vwb_std_employee", "unum__whole_life_employee", "allstate_grp_term_to_100"}
NO_SPOUSE = {"unum_group_critical_illness_employee"}


def tier(covered: list[Record]) -> str:
    """The coverage level that agrees with the dependents a line lists."""
    spouse = any(d["relationship_code"] in SPOUSES for d in covered)
    children = any(d["relationship_code"] not in SPOUSES for d in covered)
    if spouse and children:
        return "Employee + Family"
    if spouse:
        return "Employee + Spouse"
    return "Employee + Children" if children else "Employee Only"


def odd_date(rng: random.Random, year: int, month: int, day: int) -> str:
    """Mostly YYYY/MM/DD, sometimes ISO or a datetime, as PlanSource sends them."""
    roll = rng.random()
    if roll < 0.8:
        return f"{year}/{month:02d}/{day:02d}"
    if roll < 0.92:
        return f"{year}-{month:02d}-{day:02d}"
    return f"{year}-{month:02d}-{day:02d}T00:00:00Z"


class PagedWriter:
    """`[ {envelope}, {envelope}, ... ]` written page by page."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.page: list[Record] = []
        self.pages = 0
        stream.write("[")

    def add(self, record: Record) -> None:
        self.page.append(record)
        if len(self.page) == PAGE:
            self.flush()

    def flush(self) -> None:
        if not self.page:
            return
        self.stream.write(("," if self.pages else "") + "\n")
        json.dump(
            {"status": "success", "errors": [], "data": self.page},
            self.stream,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        self.pages += 1
        self.page = []

    def close(self) -> None:
        self.flush()
        self.stream.write("\n]\n")


def household(rng: random.Random, sid: int, next_dependent: int) -> list[Record]:
    members: list[Record] = []
    if rng.random() < 0.5:
        members.append(
            {
                "relationship_code": rng.choice(["spouse", "spouse", "domestic_partner"]),
                "birthdate": odd_date(
                    rng, 1970 + rng.randrange(25), 1 + rng.randrange(12), 1 + rng.randrange(28)
                ),
            }
        )
    for _ in range(rng.choices([0, 1, 2, 3], weights=[50, 25, 18, 7])[0]):
        members.append(
            {
                "relationship_code": rng.choice(["child", "child", "stepchild", "adopted_child"]),
                "birthdate": odd_date(
                    rng, 2002 + rng.randrange(22), 1 + rng.randrange(12), 1 + rng.randrange(28)
                ),
            }
        )
    for offset, member in enumerate(members):
        member.update(
            {
                "id": next_dependent + offset,
                "subscriber_id": sid,
                "ssn": "" if rng.random() < 0.1 else f"XXX-XX-{rng.randrange(10000):04d}",
                "first_name": rng.choice(FIRST),
                "middle_name": "",
                "last_name": rng.choice(LAST),
                "gender": rng.choice(["M", "F", ""]),
                "termination_date": "",
                "termination_reason": "",
            }
        )
    return members


def employee(rng: random.Random, sid: int) -> Record:
    terminated = rng.random() < 0.03
    return {
        "id": sid,
        "subscriber_code": f"E{sid}",
        "ssn": f"9{rng.randrange(100):02d}-{rng.randrange(100):02d}-{sid % 10000:04d}",
        "first_name": rng.choice(FIRST),
        "middle_name": "",
        "last_name": rng.choice(LAST),
        "address_1": f"{rng.randrange(1, 9999)} {rng.choice(STREETS)}",
        "address_2": "",
        "city": "Columbia",
        "state": "SC",
        "zip_code": f"29{rng.randrange(1000):03d}",
        "home_phone": f"803-555-{rng.randrange(10000):04d}",
        "work_phone": "",
        "email": f"e{sid}@acme.example",
        "gender": rng.choice(["M", "F", ""]),
        "birthdate": odd_date(
            rng, 1960 + rng.randrange(40), 1 + rng.randrange(12), 1 + rng.randrange(28)
        ),
        "marital_status": "",
        "hire_date": odd_date(rng, 2000 + rng.randrange(26), 1 + rng.randrange(12), 1),
        "termination_date": "2026/10/31" if terminated else "",
        "termination_reason_id": rng.choice(REASONS) if terminated else "",
        "benefits_start_date": "2026/01/01",
        "benefits_end_date": "",
        "employment_level": "F" if rng.random() < 0.85 else "P",
        "employment_status": "Terminated" if terminated else "Active",
        "org_class": "Hourly",
        "division": "Ops",
        "location": "Columbia",
        "org_payroll_id": f"P{sid}",
        "test_employee": rng.random() < 0.001,
    }


def coverages(
    rng: random.Random, sid: int, dependents: list[Record], terminated: bool, next_coverage: int
) -> list[Record]:
    chosen: list[str] = []
    while len(chosen) < rng.randint(2, 5):
        code = rng.choice(CARRIER_PRODUCTS[rng.choice(sorted(CARRIER_PRODUCTS))])
        if code not in chosen:
            chosen.append(code)
    rows: list[Record] = []
    for code in chosen:
        covered = [] if code in EMPLOYEE_ONLY else dependents
        if code in NO_SPOUSE:
            covered = [d for d in covered if d["relationship_code"] not in SPOUSES]
        row: Record = {
            "benefit_lookup_code": code,
            "plan_name": f"{code} plan",
            "coverage_level": tier(covered),
            "original_effective_date": "2026/01/01",
            "change_effective_date": "2026/01/01",
            "termination_date": "",
            "termination_reason": "",
            "dependent_ids": [d["id"] for d in covered],
        }
        roll = rng.random()
        if terminated:
            row.update(termination_date="2026/10/31", termination_reason="Employment Termination")
        elif roll < 0.04:
            row.update(original_effective_date="2027/01/01", change_effective_date="2027/01/01")
        elif roll < 0.10:
            row.update(change_effective_date="2026/06/01")
        rows.append(row)
        if not terminated and rng.random() < 0.03:
            rows.append(
                {
                    **row,
                    "plan_name": "Decline",
                    "coverage_level": "Decline",
                    "original_effective_date": "",
                    "change_effective_date": "",
                    "termination_date": "2026/09/01",
                    "dependent_ids": [],
                    "termination_reason": "Subscriber voluntarily waived coverage",
                }
            )
    rows.append(
        {
            "benefit_lookup_code": "medical_2",
            "plan_name": "Medical",
            "coverage_level": tier(dependents),
            "original_effective_date": "2026/01/01",
            "change_effective_date": "2026/01/01",
            "termination_date": "",
            "termination_reason": "",
            "dependent_ids": [d["id"] for d in dependents],
        }
    )
    for offset, row in enumerate(rows):
        row.update(
            {
                "id": next_coverage + offset,
                "subscriber_id": sid,
                "benefit_name": row["benefit_lookup_code"],
                "subscriber_premium": round(5 + rng.random() * 40, 2),
                "org_premium": 0.0,
                "volume": None,
                "plan_group_number": "AW-2026",
                "tax_treatment": "posttax",
            }
        )
    return rows


def generate(employees: int, seed: int) -> Iterator[tuple[Record, list[Record], list[Record]]]:
    rng = random.Random(seed)
    next_dependent, next_coverage = 1_000_000, 5_000_000
    for sid in range(1, employees + 1):
        subscriber = employee(rng, sid)
        dependents = household(rng, sid, next_dependent)
        next_dependent += len(dependents)
        rows = coverages(rng, sid, dependents, bool(subscriber["termination_date"]), next_coverage)
        next_coverage += len(rows)
        yield subscriber, dependents, rows


def write(employees: int, seed: int, out: Path) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    counts = {"subscribers": 0, "dependents": 0, "coverages": 0}
    names = ("subscribers", "dependents", "coverages")
    streams = [(out / f"{name}.json").open("w", encoding="utf-8") for name in names]
    writers = [PagedWriter(stream) for stream in streams]
    try:
        for subscriber, dependents, rows in generate(employees, seed):
            for writer, name, records in zip(
                writers, names, ([subscriber], dependents, rows), strict=True
            ):
                for record in records:
                    writer.add(record)
                counts[name] += len(records)
        for writer in writers:
            writer.close()
    finally:
        for stream in streams:
            stream.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description="Deterministic PlanSource export generator")
    parser.add_argument("--employees", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(write(args.employees, args.seed, args.out)))


if __name__ == "__main__":
    main()
