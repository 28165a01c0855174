"""The mass-termination guard's percentage limit on its own, and the `[changes]` options whose
branches no other test reaches (carrier_replaces, the reinstatement window, disappearance_end)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import transmit
from edi.errors import GuardTripped
from edi.pipeline import baselines, generate
from edi.profiles import load_profile
from edi.workspace import Workspace
from tests.support.workspace import ExportBuilder, assert_valid_834, hd_lines, member_loops

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
AS_OF = date(2026, 11, 24)


def workspace_with(edi_home: Path, changes: str) -> Workspace:
    profile = edi_home / "carriers" / "colonial.toml"
    profile.write_text(profile.read_text() + "\n[changes]\n" + changes)
    return Workspace.open(edi_home)


def families(export: ExportBuilder, count: int, children: int) -> ExportBuilder:
    for sid in range(1, count + 1):
        export.subscriber(sid)
        kids = [sid * 100 + n for n in range(children)]
        for kid in kids:
            export.dependent(kid, sid, "child")
        export.coverage(
            sid * 10,
            sid,
            "colonial_accident_1",
            coverage_level="Employee + Child(ren)" if kids else "Employee Only",
            dependent_ids=kids,
        )
    return export


def deliver(ws: Workspace, export: ExportBuilder, out: str = "out", **options: object) -> Path:
    result = generate(
        ws,
        "colonial",
        now=NOW,
        as_of=AS_OF,
        source=export.write(),
        out_dir=ws.home / out,
        **options,  # type: ignore[arg-type]
    )
    assert baselines(ws).commit("colonial", result.fingerprint, NOW)
    return result.path


def terminate(export: ExportBuilder, sid: int) -> None:
    subscriber = next(s for s in export.subscribers if s["id"] == sid)
    subscriber.update(termination_date="2026/11/15", termination_reason_id="employment_termination")
    for coverage in export.coverages:
        if coverage["subscriber_id"] == sid:
            coverage.update(
                termination_date="2026/11/15", termination_reason="Employment Termination"
            )


def test_percentage_limit_counts_subscribers_against_subscribers(
    edi_home: Path, export: ExportBuilder
) -> None:
    """2 of 5 subscribers terminated is 40 % (over a 30 % limit); counted against all 15
    members (dependents included) it would be 13 % and pass."""
    ws = workspace_with(
        edi_home, 'file_type = "changes"\nmax_terminations_pct = 30\nmax_disappearances = 100\n'
    )
    deliver(ws, families(export, 5, children=2))
    terminate(export, 1)
    terminate(export, 2)
    with pytest.raises(GuardTripped) as tripped:
        generate(
            ws, "colonial", now=NOW, as_of=AS_OF, source=export.write(), out_dir=ws.home / "out2"
        )
    assert "2 termination(s) (40.0% of 5 covered subscribers" in tripped.value.message
    assert not list((ws.home / "out2").glob("*.834"))


def test_percentage_under_the_limit_passes(edi_home: Path, export: ExportBuilder) -> None:
    ws = workspace_with(
        edi_home, 'file_type = "changes"\nmax_terminations_pct = 30\nmax_disappearances = 100\n'
    )
    deliver(ws, families(export, 5, children=2))
    terminate(export, 1)
    path = generate(
        ws, "colonial", now=NOW, as_of=AS_OF, source=export.write(), out_dir=ws.home / "out2"
    ).path
    loops = list(member_loops(assert_valid_834(path, load_profile(ws, "colonial"))))
    assert {loop[0][3] for loop in loops} == {"024"} and len(loops) == 3  # 1 + 2 children


@pytest.mark.parametrize(("replaces", "bgn08"), [(True, "RX"), (False, "2")])
def test_carrier_replaces_marks_full_files_rx(
    edi_home: Path, export: ExportBuilder, replaces: bool, bgn08: str
) -> None:
    ws = workspace_with(
        edi_home, f'file_type = "full"\ncarrier_replaces = {str(replaces).lower()}\n'
    )
    path = deliver(ws, families(export, 2, children=0))
    bgn = next(
        seg for seg in assert_valid_834(path, load_profile(ws, "colonial")) if seg[0] == "BGN"
    )
    assert bgn[8] == bgn08


@pytest.mark.parametrize(("window", "maintenance"), [(90, "025"), (10, "021")])
def test_reinstatement_window(
    edi_home: Path, export: ExportBuilder, window: int, maintenance: str
) -> None:
    """Ended 2026-10-31, back on 2026-11-24 (24 days): a reinstatement within 90 days, a new
    addition when the window is 10 days."""
    ws = workspace_with(edi_home, f'file_type = "changes"\nreinstatement_window_days = {window}\n')
    families(export, 2, children=0)
    export.subscribers[0].update(
        termination_date="2026/10/31", termination_reason_id="employment_termination"
    )
    export.coverages[0].update(
        termination_date="2026/10/31", termination_reason="Employment Termination"
    )
    deliver(ws, export)
    export.subscribers[0].update(termination_date="", termination_reason_id="")
    export.coverages[0].update(termination_date="", termination_reason="")
    path = generate(
        ws, "colonial", now=NOW, as_of=AS_OF, source=export.write(), out_dir=ws.home / "out2"
    ).path
    (loop,) = member_loops(assert_valid_834(path, load_profile(ws, "colonial")))
    assert [h["HD01"] for h in hd_lines(loop)] == [maintenance]


@pytest.mark.parametrize(
    ("setting", "end"), [("day_before_as_of", "20261123"), ("as_of", "20261124")]
)
def test_disappearance_end(edi_home: Path, export: ExportBuilder, setting: str, end: str) -> None:
    ws = workspace_with(
        edi_home,
        f'file_type = "changes"\ndisappearance_end = "{setting}"\nmax_terminations_pct = 50\n',
    )
    deliver(ws, families(export, 3, children=0))
    del export.subscribers[0]
    del export.coverages[0]
    path = generate(
        ws, "colonial", now=NOW, as_of=AS_OF, source=export.write(), out_dir=ws.home / "out2"
    ).path
    (loop,) = member_loops(assert_valid_834(path, load_profile(ws, "colonial")))
    assert [(h["HD01"], h["349"]) for h in hd_lines(loop)] == [("024", end)]


class RenameFails(transmit.LocalFolderDestination):
    """A real folder whose rename is refused, as a server that forbids renames would."""

    def rename(self, src: str, dst: str) -> None:
        raise transmit.PermanentDeliveryError("rename-refused", "rename refused")


def test_failed_upload_removes_its_partial(tmp_path: Path) -> None:
    local = tmp_path / "file.834.pgp"
    local.write_bytes(b"x" * 10_000)
    remote = tmp_path / "remote"
    remote.mkdir()
    with pytest.raises(transmit.PermanentDeliveryError):
        transmit.deliver(local, local.name, lambda: RenameFails(remote))
    assert list(remote.iterdir()) == []
