"""The scenario folders under tests/fixtures/{pass,fail}/: a small PlanSource export each, and
`expect.toml` naming the carrier, the as-of date, the expected finding codes and any profile
lines the scenario adds."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from tests.support.workspace import REPO

FIXTURES = REPO / "tests" / "fixtures"
QUARANTINE = ("send_contact = true\n", 'send_contact = true\non_bad_record = "quarantine"\n')


@dataclass(frozen=True)
class Scenario:
    folder: Path
    carrier: str
    as_of: date
    findings: list[str]
    warnings: list[str]
    profile: str

    @property
    def name(self) -> str:
        return self.folder.name

    def records(self, kind: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads((self.folder / f"{kind}.json").read_text())
        return rows

    def subscriber_ids(self) -> set[str]:
        return {str(row["id"]) for row in self.records("subscribers")}


def scenario(folder: Path) -> Scenario:
    expect = tomllib.loads((folder / "expect.toml").read_text())
    return Scenario(
        folder=folder,
        carrier=expect["carrier"],
        as_of=date.fromisoformat(expect["as_of"]),
        findings=sorted(expect.get("findings", [])),
        warnings=sorted(expect.get("warnings", [])),
        profile=expect.get("profile", ""),
    )


def scenarios(kind: str) -> list[Scenario]:
    return [scenario(folder) for folder in sorted((FIXTURES / kind).iterdir()) if folder.is_dir()]


def prepare_profile(home: Path, carrier: str, extra: str = "", quarantine: bool = False) -> None:
    path = home / "carriers" / f"{carrier}.toml"
    text = path.read_text()
    if quarantine:
        assert QUARANTINE[0] in text
        text = text.replace(*QUARANTINE)
    path.write_text(text + ("\n" + extra + "\n" if extra else ""))


def merged_export(target: Path, chosen: list[Scenario]) -> Path:
    """One export holding every chosen scenario's records (their ids never collide)."""
    target.mkdir(parents=True, exist_ok=True)
    for kind in ("subscribers", "dependents", "coverages"):
        rows = [row for s in chosen for row in s.records(kind)]
        ids = [row["id"] for row in rows]
        assert len(ids) == len(set(ids)), f"{kind}: scenario ids collide"
        (target / f"{kind}.json").write_text(json.dumps(rows))
    return target
