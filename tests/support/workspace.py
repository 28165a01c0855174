"""Workspace fixtures: a temporary EDI_HOME with the repo's carrier profiles, and an export
builder that writes PlanSource-shaped JSON for a test's own records."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import transmit
from edi.cli import main
from edi.profiles import CarrierProfile, load_profile
from edi.validate import validate_file
from edi.workspace import Workspace
from edi.x12.reader import read_segments

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "plansource"


@dataclass
class ExportBuilder:
    """Small PlanSource exports: sensible defaults, each test overrides what it is about."""

    root: Path
    subscribers: list[dict[str, Any]] = field(default_factory=list)
    dependents: list[dict[str, Any]] = field(default_factory=list)
    coverages: list[dict[str, Any]] = field(default_factory=list)

    def subscriber(self, sid: int, **fields: Any) -> dict[str, Any]:
        record = {
            "id": sid,
            "subscriber_code": f"E{sid}",
            "ssn": f"9{sid:08d}"[-9:],
            "first_name": "Test",
            "last_name": f"Member{sid}",
            "gender": "F",
            "birthdate": "1980/01/15",
            "hire_date": "2015/03/01",
            "address_1": "1 Test St",
            "city": "Columbia",
            "state": "SC",
            "zip_code": "29201",
            "employment_level": "F",
            "employment_status": "Active",
        }
        record.update(fields)
        self.subscribers.append(record)
        return record

    def dependent(
        self, did: int, sid: int, relationship: str = "child", **fields: Any
    ) -> dict[str, Any]:
        record = {
            "id": did,
            "subscriber_id": sid,
            "ssn": "XXX-XX-1234",
            "first_name": "Dep",
            "last_name": f"Member{sid}",
            "birthdate": "2012/05/05",
            "gender": "M",
            "relationship_code": relationship,
        }
        record.update(fields)
        self.dependents.append(record)
        return record

    def coverage(self, cid: int, sid: int, code: str, **fields: Any) -> dict[str, Any]:
        record = {
            "id": cid,
            "subscriber_id": sid,
            "benefit_lookup_code": code,
            "benefit_name": code,
            "plan_name": "Plan",
            "coverage_level": "Employee Only",
            "original_effective_date": "2026/01/01",
            "change_effective_date": "2026/01/01",
            "termination_date": "",
            "termination_reason": "",
            "subscriber_premium": 10.0,
            "dependent_ids": [],
        }
        record.update(fields)
        self.coverages.append(record)
        return record

    def write(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        for name in ("subscribers", "dependents", "coverages"):
            (self.root / f"{name}.json").write_text(json.dumps(getattr(self, name)))
        return self.root


# The SQLite files a workspace keeps when its state is not in a shared store.
SQLITE_STATE = ("control.sqlite", "baseline.sqlite", "delivery-log.sqlite", "discrepancies.sqlite")


def on_store_pass(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--store") == "postgres")


def keep_state_in_store(
    home: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pytest --store postgres`: the workspace at `home`, whatever edi.toml the test writes,
    opens as `name = "acme"` with `[store] url_env = "EDI_STORE_URL"` (a fresh database,
    reached as a login role in `edi_app`, the workers' role), as if its edi.toml said so. A
    test that starts edi in another process must write that into edi.toml itself
    (`name_the_store`); `check_no_sqlite_state` catches one that did not."""
    url = request.getfixturevalue("pg_url")
    open_in_store(home, url, request.getfixturevalue("postgres_server"), monkeypatch)


def open_in_store(
    home: Path, owner_url: str, server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's schema made in `owner_url`'s database, EDI_STORE_URL set to it as a login
    role in edi_app, and `Workspace.open(home)` given `name` and `[store]` when edi.toml has
    none."""
    from dataclasses import replace

    from edi.store import init_schema
    from edi.workspace import StoreSettings
    from tests.support.postgres import as_application_role

    init_schema(owner_url)
    # edi runs as a worker's role would, not as the fixture's superuser: a grant the
    # application lacks fails here as it would in production.
    monkeypatch.setenv("EDI_STORE_URL", as_application_role(server, owner_url))
    opened = Workspace.open
    root = home.resolve()

    def open_with_store(
        cls: type[Workspace], home: Path | None = None, *, must_exist: bool = False
    ) -> Workspace:
        found = opened(home, must_exist=must_exist)
        if found.home != root or found.settings.store is not None:
            return found
        settings = found.settings.model_copy(
            update={
                "name": found.settings.name or "acme",
                "store": StoreSettings(url_env="EDI_STORE_URL"),
            }
        )
        return replace(found, settings=settings)

    monkeypatch.setattr(Workspace, "open", classmethod(open_with_store))


def check_no_sqlite_state(home: Path) -> None:
    """On the store pass, nothing of the state went to SQLite files instead."""
    written = [name for name in SQLITE_STATE if (home / "state" / name).exists()]
    assert not written, f"the store pass wrote state/{written} (mark it sqlite_only?)"


@pytest.fixture
def edi_home(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A fresh workspace with the repository's carrier profiles and no source configured; on
    the store pass (`pytest --store postgres`) its state lives in PostgreSQL."""
    home = tmp_path / "workspace"
    shutil.copytree(REPO / "carriers", home / "carriers")
    monkeypatch.setenv("EDI_HOME", str(home))
    store_pass = on_store_pass(request)
    if store_pass:
        keep_state_in_store(home, request, monkeypatch)
    yield home
    transmit.stop_gpg_agent(home / "state" / "gnupg")  # no agent outlives its test
    if store_pass:
        check_no_sqlite_state(home)


@pytest.fixture
def workspace(edi_home: Path) -> Workspace:
    return Workspace.open(edi_home)


@pytest.fixture
def export(tmp_path: Path) -> ExportBuilder:
    return ExportBuilder(tmp_path / "export")


@pytest.fixture
def colonial(workspace: Workspace) -> CarrierProfile:
    return load_profile(workspace, "colonial")


def segments(path: Path) -> list[list[str]]:
    return list(read_segments(path))


def assert_valid_834(path: Path, profile: CarrierProfile | None = None) -> list[list[str]]:
    """pyx12 (through its Python API) and the profile rules both accept the file."""
    report = validate_file(path, profile)
    assert report.valid, "\n".join(f.line() for f in report.findings)
    return segments(path)


def member_loops(segs: list[list[str]]) -> Iterator[list[list[str]]]:
    """The segments of each 2000 loop, INS first."""
    current: list[list[str]] = []
    for seg in segs:
        if seg[0] == "INS":
            if current:
                yield current
            current = [seg]
        elif seg[0] == "SE":
            break
        elif current:
            current.append(seg)
    if current:
        yield current


def loop_for(segs: list[list[str]], member_id: str, relationship: str = "18") -> list[list[str]]:
    """The 2000 loop with REF*0F = member_id and INS02 = relationship."""
    for loop in member_loops(segs):
        if loop[0][2] == relationship and ["REF", "0F", member_id] in loop:
            return loop
    raise AssertionError(f"no member loop for {member_id} / INS02 {relationship}")


def hd_lines(loop: list[list[str]]) -> list[dict[str, str]]:
    """Each HD with its DTP dates: {'HD01', 'HD03', 'HD04', 'HD05', '348', '349', 'AMT'}."""
    lines: list[dict[str, str]] = []
    for seg in loop:
        if seg[0] == "HD":
            lines.append(
                {
                    "HD01": seg[1],
                    "HD03": seg[3],
                    "HD04": seg[4] if len(seg) > 4 else "",
                    "HD05": seg[5] if len(seg) > 5 else "",
                }
            )
        elif lines and seg[0] == "DTP":
            lines[-1][seg[1]] = seg[3]
        elif lines and seg[0] == "AMT":
            lines[-1]["AMT"] = seg[2]
    return lines


def dates(loop: list[list[str]]) -> dict[str, str]:
    """Member-level DTPs (before the first HD)."""
    found: dict[str, str] = {}
    for seg in loop:
        if seg[0] == "HD":
            break
        if seg[0] == "DTP":
            found[seg[1]] = seg[3]
    return found


def edi(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    captured = capsys.readouterr()
    return int(done.value.code or 0), captured.out, captured.err


def log_entries(capsys: pytest.CaptureFixture[str], home: Path) -> list[dict[str, object]]:
    code, out, _ = edi(capsys, "log", "list", "--json", "--home", str(home))
    assert code == 0
    return list(json.loads(out))
