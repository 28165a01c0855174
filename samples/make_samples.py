"""Writes samples/plansource/: a fictional employer's PlanSource export (stdlib only, seeded).

Acme Widgets Inc. is fictional; every SSN is in the never-issued 900-999 area. Scenario records
have fixed ids (listed in samples/README.md, and tested); 48 ordinary employees around them are
drawn from a seeded random generator. The three files use the three container shapes the export
format allows: subscribers as envelope pages, dependents as one envelope, coverages as a plain
array.

    python samples/make_samples.py [--out samples/plansource]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

Record = dict[str, Any]
PLAN_YEAR = "2026/01/01"
WAIVED = "Subscriber voluntarily waived coverage"
FIRST = [
    "Avery",
    "Jordan",
    "Riley",
    "Morgan",
    "Casey",
    "Quinn",
    "Rowan",
    "Emerson",
    "Harper",
    "Logan",
    "Parker",
    "Reese",
    "Sage",
    "Taylor",
    "Blake",
    "Dakota",
    "Elliot",
    "Finley",
]
LAST = [
    "Adler",
    "Brennan",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fontaine",
    "Garza",
    "Haddad",
    "Ibarra",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
]
STREETS = ["Maple Ave", "Cedar Ln", "Harbor Rd", "Summit St", "Willow Ct", "Ridge Way"]
SPOUSES = ("spouse", "domestic_partner", "civil_union")
# Who a plan covers (issue 18): one-person products never list dependents; an employee plan
# beside a separate spouse plan covers the employee and children only.
EMPLOYEE_ONLY = {"unum_vwb_std_employee", "unum__whole_life_employee", "allstate_grp_term_to_100"}
NO_SPOUSE = {"unum_group_critical_illness_employee"}
PRODUCTS = {
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


class Employer:
    def __init__(self) -> None:
        self.subscribers: list[Record] = []
        self.dependents: list[Record] = []
        self.coverages: list[Record] = []
        self.next_coverage = 5001

    def subscriber(self, sid: int, first: str, last: str, **fields: Any) -> Record:
        record: Record = {
            "id": sid,
            "subscriber_code": f"AW{sid}",
            "ssn": f"9{sid % 100:02d}-{sid % 97:02d}-{sid:04d}",
            "first_name": first,
            "middle_name": "",
            "last_name": last,
            "address_1": f"{100 + sid % 800} {STREETS[sid % len(STREETS)]}",
            "address_2": "",
            "city": "Columbia",
            "state": "SC",
            "zip_code": "29201",
            "home_phone": f"803-555-{sid % 10000:04d}",
            "work_phone": "",
            "email": f"emp{sid}@acme.example",
            "gender": "F" if sid % 2 else "M",
            "birthdate": f"{1960 + sid % 35}/{1 + sid % 12:02d}/{1 + sid % 27:02d}",
            "marital_status": "",
            "hire_date": f"{2008 + sid % 15}/03/01",
            "termination_date": "",
            "termination_reason_id": "",
            "benefits_start_date": PLAN_YEAR,
            "benefits_end_date": "",
            "employment_level": "F" if sid % 5 else "P",
            "employment_status": "Active",
            "org_class": "Salaried",
            "division": "Manufacturing",
            "location": "Columbia",
            "org_payroll_id": f"P{sid}",
            "test_employee": False,
        }
        record.update(fields)
        self.subscribers.append(record)
        return record

    def dependent(self, did: int, sid: int, first: str, relationship: str, **fields: Any) -> Record:
        owner = next(s for s in self.subscribers if s["id"] == sid)
        child = relationship in (
            "child",
            "stepchild",
            "foster_child",
            "adopted_child",
            "legal_ward",
        )
        record: Record = {
            "id": did,
            "subscriber_id": sid,
            "ssn": f"XXX-XX-{did % 10000:04d}",
            "first_name": first,
            "middle_name": "",
            "last_name": owner["last_name"],
            "birthdate": f"{2008 + did % 12}/05/{1 + did % 27:02d}" if child else "1982/07/14",
            "gender": "M" if did % 2 else "F",
            "relationship_code": relationship,
            "termination_date": "",
            "termination_reason": "",
        }
        record.update(fields)
        self.dependents.append(record)
        return record

    def coverage(self, sid: int, code: str, level: str = "Employee Only", **fields: Any) -> Record:
        record: Record = {
            "id": self.next_coverage,
            "subscriber_id": sid,
            "benefit_name": code.replace("_", " ").title(),
            "benefit_lookup_code": code,
            "org_plan_id": 700 + len(code),
            "plan_name": f"{code} plan",
            "coverage_level": level,
            "coverage_level_id": 10 + len(level),
            "original_effective_date": PLAN_YEAR,
            "change_effective_date": PLAN_YEAR,
            "termination_date": "",
            "termination_reason": "",
            "subscriber_premium": 9.5 + len(code) % 7,
            "org_premium": 0.0,
            "volume": None,
            "plan_group_number": "AW-2026",
            "plan_partner_code_1": "",
            "plan_partner_code_2": "",
            "dependent_ids": [],
            "tax_treatment": "posttax",
        }
        record.update(fields)
        self.next_coverage += 1
        self.coverages.append(record)
        return record

    def decline(self, sid: int, code: str, on: str = PLAN_YEAR) -> Record:
        return self.coverage(
            sid,
            code,
            "Decline",
            plan_name="Decline",
            original_effective_date="",
            change_effective_date="",
            termination_date=on,
            termination_reason=WAIVED,
            subscriber_premium=0.0,
        )


def scenarios(acme: Employer) -> None:
    """Each scenario of samples/README.md, by fixed PlanSource id."""
    acme.subscriber(
        1001,
        "Siobhan",
        "O'Brien*Smith~Jr",
        address_1="12 Elm St: Apt ^4",
        middle_name="Zoë",
        email="s.obrien@acme.example",
    )
    acme.dependent(2001, 1001, "Liam", "spouse", ssn="912-01-2001")
    acme.dependent(2002, 1001, "Aoife", "child", ssn="")
    acme.dependent(2003, 1001, "Cian", "adopted_child")
    family = [2001, 2002, 2003]
    acme.coverage(1001, "colonial_accident_1", "Employee + Family", dependent_ids=family)
    acme.coverage(1001, "unum_group_accident_employee", "Employee + Family", dependent_ids=family)
    acme.coverage(1001, "allstate_cancer", "Employee + Spouse", dependent_ids=[2001])

    acme.subscriber(
        1002,
        "Tobias",
        "Reinholt",
        employment_status="Terminated",
        termination_date="2026/10/31",
        termination_reason_id="employment_termination",
    )
    for code in ("colonial_cancer_1", "unum_vwb_std_employee", "allstate_accident"):
        acme.coverage(
            1002, code, termination_date="2026/10/31", termination_reason="Employment Termination"
        )

    acme.subscriber(1003, "Marisol", "Quintero")
    acme.coverage(1003, "colonial_accident_1")
    acme.coverage(
        1003, "colonial_cancer_1", termination_date="2026-09-30", termination_reason="Plan Change"
    )

    acme.subscriber(1004, "Dmitri", "Volkov")
    acme.dependent(
        2004,
        1004,
        "Yulia",
        "child",
        birthdate="2000/10/30",
        termination_date="2026/10/31",
        termination_reason="Overage Dependent",
    )
    acme.dependent(2014, 1004, "Pavel", "child")
    acme.coverage(
        1004, "colonial_critical_illness_0", "Employee + Children", dependent_ids=[2004, 2014]
    )

    acme.subscriber(1005, "Hannah", "Lindgren")
    acme.dependent(
        2005, 1005, "Erik", "spouse", termination_date="2026/10/15", termination_reason="divorce"
    )
    acme.coverage(1005, "unum_group_critical_illness_employee")
    acme.coverage(
        1005, "unum_group_critical_illness_spouse", "Employee + Spouse", dependent_ids=[2005]
    )

    acme.subscriber(1006, "Kwame", "Asante")
    acme.dependent(
        2006,
        1006,
        "Ama",
        "stepchild",
        termination_date="2026-10-20T00:00:00Z",
        termination_reason="Dependent Death",
    )
    acme.dependent(2016, 1006, "Kofi", "foster_child")
    acme.coverage(
        1006, "allstate_critical_illness", "Employee + Child(ren)", dependent_ids=[2006, 2016]
    )

    acme.subscriber(1007, "Beatriz", "Santos")
    acme.coverage(1007, "colonial_cancer_1")
    acme.decline(1007, "colonial_cancer_1", on="2026/09/01")
    acme.coverage(1007, "colonial_accident_1")

    acme.subscriber(1008, "Gideon", "Farrow")
    acme.decline(1008, "colonial_accident_1")
    acme.coverage(1008, "unum_vwb_std_employee")

    acme.subscriber(1009, "Ingrid", "Solberg")
    acme.coverage(1009, "unum__whole_life_employee")
    acme.decline(1009, "unum__whole_life_employee", on="2026/08/01")
    acme.coverage(1009, "unum_group_accident_employee")

    acme.subscriber(1010, "Rafael", "Montoya")
    acme.decline(1010, "allstate_accident")
    acme.decline(1010, "unum_vwb_std_employee")
    acme.coverage(1010, "allstate_cancer")
    acme.coverage(1010, "unum_group_accident_employee")

    acme.subscriber(
        1011, "Noor", "Haddad", hire_date="2026/11/15", benefits_start_date="2027/01/01"
    )
    for code in ("allstate_accident", "colonial_hospital_confinement_0"):
        acme.coverage(
            1011, code, original_effective_date="2027/01/01", change_effective_date="2027/01/01"
        )

    acme.subscriber(1012, "Test", "Employee", test_employee=True)
    for codes in PRODUCTS.values():
        acme.coverage(1012, codes[0])

    acme.subscriber(1013, "Colette", "Marchand", marital_status="Married")
    acme.dependent(2013, 1013, "Julien", "spouse", ssn="912-13-2013")
    acme.coverage(
        1013,
        "colonial_term_life_0",
        "Employee + Spouse",
        dependent_ids=[2013],
        change_effective_date="2026/06/01",
        subscriber_premium=18.25,
    )
    acme.coverage(1013, "allstate_grp_term_to_100", change_effective_date="2026/06/01")

    acme.subscriber(1014, "Alex", "Whitfield")
    acme.dependent(2024, 1014, "Sam", "domestic_partner", ssn="912-14-2024")
    acme.coverage(
        1014, "unum_group_accident_employee", "Employee + Domestic Partner", dependent_ids=[2024]
    )
    acme.coverage(1014, "colonial_accident_1", "Employee + Domestic Partner", dependent_ids=[2024])

    acme.subscriber(1015, "Priya", "Raman")
    acme.coverage(1015, "medical_2")
    acme.coverage(1015, "hsa")

    acme.subscriber(
        1016, "Mateo", "Ibáñez", birthdate="1988-02-29", hire_date="2019-07-01T00:00:00Z"
    )
    acme.dependent(2026, 1016, "Lucia", "civil_union", ssn="", birthdate="1989/12/01")
    acme.dependent(2036, 1016, "Nico", "legal_ward", ssn="")
    acme.coverage(
        1016,
        "allstate_accident",
        "Employee + Family",
        dependent_ids=[2026, 2036],
        original_effective_date="2026-01-01",
        change_effective_date="",
    )

    acme.subscriber(
        1017,
        "Yusuf",
        "Demir",
        employment_status="Terminated",
        termination_date="2026/11/15",
        termination_reason_id="EMPLOYMENT TERMINATION",
    )
    acme.coverage(
        1017,
        "unum_group_critical_illness_employee",
        termination_date="2026/11/16",
        termination_reason="EMPLOYMENT-TERMINATION",
    )

    acme.subscriber(
        1018,
        "Evelyn",
        "Harrow",
        employment_status="Terminated",
        termination_date="2026/11/05",
        termination_reason_id="death",
    )
    for code in ("colonial_accident_1", "allstate_cancer"):
        acme.coverage(1018, code, termination_date="2026/11/05", termination_reason="Death")

    acme.subscriber(
        1019,
        "Walter",
        "Brandt",
        employment_status="Retired",
        termination_date="2026/06/30",
        retirement_date="2026/06/30",
    )
    for code in ("colonial_cancer_1", "unum_group_accident_employee"):
        acme.coverage(1019, code)

    acme.subscriber(1020, "Łukasz", "Strauß-Østergård", middle_name="Jürgen")
    for code in ("colonial_accident_1", "unum_group_accident_employee", "allstate_accident"):
        acme.coverage(1020, code)

    acme.subscriber(
        1021,
        "Margarethe",
        "Vandenberg",
        address_1="12345 North Saint Lawrence Seaway Industrial Park Boulevard Building 7",
        address_2="Suite 1200",
    )
    for code in ("colonial_accident_1", "allstate_cancer"):
        acme.coverage(1021, code)

    acme.subscriber(1022, "Oskar", "Lindqvist")
    acme.dependent(
        2022, 1022, "Freja", "spouse", termination_date="2026/10/15", termination_reason="Divorce"
    )
    acme.dependent(2032, 1022, "Nils", "child")
    # PlanSource took the divorced spouse off the coverages: only the dependent record says so.
    for code in ("colonial_accident_1", "unum_group_accident_employee"):
        acme.coverage(
            1022, code, "Employee + Child", dependent_ids=[2032], change_effective_date="2026/10/16"
        )


def tier(covered: list[Record]) -> str:
    """The coverage level that agrees with the dependents a line lists."""
    spouse = any(d["relationship_code"] in SPOUSES for d in covered)
    children = any(d["relationship_code"] not in SPOUSES for d in covered)
    if spouse and children:
        return "Employee + Family"
    if spouse:
        return "Employee + Spouse"
    return "Employee + Children" if children else "Employee Only"


def ordinary_employees(acme: Employer, rng: random.Random, count: int = 48) -> None:
    dependent_id = 3000
    for sid in range(1101, 1101 + count):
        acme.subscriber(sid, rng.choice(FIRST), rng.choice(LAST))
        household: list[int] = []
        if rng.random() < 0.55:
            dependent_id += 1
            acme.dependent(
                dependent_id,
                sid,
                rng.choice(FIRST),
                rng.choice(["spouse", "spouse", "domestic_partner"]),
            )
            household.append(dependent_id)
        for _ in range(rng.choice([0, 0, 1, 2])):
            dependent_id += 1
            acme.dependent(
                dependent_id, sid, rng.choice(FIRST), rng.choice(["child", "child", "stepchild"])
            )
            household.append(dependent_id)
        records = [d for d in acme.dependents if d["id"] in household]
        carriers = rng.sample(sorted(PRODUCTS), rng.randint(1, 3))
        for carrier in carriers:
            for code in rng.sample(PRODUCTS[carrier], rng.randint(1, 2)):
                covered = [] if code in EMPLOYEE_ONLY else records
                if code in NO_SPOUSE:
                    covered = [d for d in covered if d["relationship_code"] not in SPOUSES]
                ids = [d["id"] for d in covered]
                acme.coverage(sid, code, tier(covered), dependent_ids=ids)
        acme.coverage(sid, "medical_2", "Employee Only")


def envelope(records: list[Record]) -> Record:
    return {"status": "success", "errors": [], "data": records}


def write(acme: Employer, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pages = [envelope(acme.subscribers[i : i + 25]) for i in range(0, len(acme.subscribers), 25)]
    documents = {
        "subscribers": pages,
        "dependents": envelope(acme.dependents),
        "coverages": acme.coverages,
    }
    for name, document in documents.items():
        (out / f"{name}.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "plansource")
    args = parser.parse_args()
    acme = Employer()
    scenarios(acme)
    ordinary_employees(acme, random.Random(20261124))
    write(acme, args.out)


if __name__ == "__main__":
    main()
