"""`pull` against the sandbox on 127.0.0.1: the snapshot is the served export, page for page."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from datetime import UTC, date
from pathlib import Path

import pytest

from edi.errors import PlanSourceApiError, UsageError
from edi.plansource.client import PlanSourceClient
from edi.plansource.export import raw_records, read_export
from edi.workspace import Workspace
from tests.support.plansource_server import SAMPLE_EXPORT, RunningSandbox

KINDS = ("subscribers", "dependents", "coverages")
Sandbox = Callable[..., RunningSandbox]
Export = Callable[..., Path]


def records(folder: Path, kind: str) -> list[dict[str, object]]:
    return list(raw_records(folder / f"{kind}.json"))


def test_full_pull_equals_the_served_export(plansource_sandbox: Sandbox, tmp_path: Path) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT)
    snapshot = tmp_path / "snap"
    manifest = api.pull(snapshot, per_page=7, concurrency=3)

    for kind in KINDS:
        assert records(snapshot, kind) == records(SAMPLE_EXPORT, kind)
    assert manifest.counts["subscribers"] == len(records(SAMPLE_EXPORT, "subscribers"))
    assert manifest.endpoints["coverages"].pages == math.ceil(manifest.counts["coverages"] / 7)
    with read_export(snapshot, tmp_path) as data:
        assert data.counts == {kind: manifest.counts[kind] for kind in KINDS}


def test_manifest_lists_counts_time_api_and_hashes(
    plansource_sandbox: Sandbox, tmp_path: Path
) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT)
    snapshot = tmp_path / "snap"
    api.pull(snapshot, per_page=50)

    written = json.loads((snapshot / "manifest.json").read_text())
    assert written["api_base"] == api.base_url
    assert written["pulled_at"].endswith("Z") or written["pulled_at"].endswith("+00:00")
    assert set(written["files"]) == {
        "subscribers.json",
        "dependents.json",
        "coverages.json",
        "meta/coverage.json",
        "meta/dependent.json",
    }
    for relative, digest in written["files"].items():
        assert hashlib.sha256((snapshot / relative).read_bytes()).hexdigest() == digest
    reasons = json.loads((snapshot / "meta" / "coverage.json").read_text())["data"]
    assert "employment_termination" in {r["code"] for r in reasons["termination_reasons"]}
    codes = json.loads((snapshot / "meta" / "dependent.json").read_text())["data"]
    assert "domestic_partner" in codes["relationship_codes"]
    assert not (snapshot / ".ids.sqlite").exists()


@pytest.mark.parametrize("count", [0, 1, 5, 6])
def test_pagination_edges(
    count: int, plansource_sandbox: Sandbox, plansource_export: Export, tmp_path: Path
) -> None:
    export = plansource_export(subscribers=count, dependents_per=0, coverages_per=1)
    api = plansource_sandbox(export)
    snapshot = tmp_path / "snap"
    manifest = api.pull(snapshot, per_page=5, concurrency=2)

    assert manifest.endpoints["subscribers"].pages == max(1, math.ceil(count / 5))
    assert manifest.counts["subscribers"] == count
    for kind in KINDS:
        assert records(snapshot, kind) == records(export, kind)


def test_since_is_sent_as_updated_since(
    plansource_sandbox: Sandbox, plansource_export: Export, tmp_path: Path
) -> None:
    export = plansource_export(subscribers=6, dependents_per=0, coverages_per=0)
    subscribers = json.loads((export / "subscribers.json").read_text())
    for n, record in enumerate(subscribers):
        record["updated_at"] = "2026-01-10T08:00:00Z" if n % 2 else "2025/06/01"
    (export / "subscribers.json").write_text(json.dumps(subscribers))
    api = plansource_sandbox(export)

    manifest = api.pull(tmp_path / "delta", pull_options={"since": date(2026, 1, 1)})

    assert manifest.incremental and manifest.since_param == "updated_since"
    assert [r["id"] for r in records(tmp_path / "delta", "subscribers")] == [1002, 1004, 1006]


def test_interrupted_pull_publishes_nothing(plansource_sandbox: Sandbox, tmp_path: Path) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT)
    snapshots = Workspace.open(tmp_path).snapshots_dir

    def interrupt(endpoint: str, done: int, total: int | None) -> None:
        if endpoint == "dependents":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.pull(snapshots / "20260101T000000Z", per_page=5, pull_options={"progress": interrupt})

    assert list(snapshots.iterdir()) == []  # no snapshot, no partial folder left behind
    assert Workspace.open(tmp_path).newest_snapshot() is None


def test_a_failed_pull_leaves_the_previous_snapshot_newest(
    plansource_sandbox: Sandbox, tmp_path: Path
) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT)
    snapshots = Workspace.open(tmp_path).snapshots_dir
    api.pull(snapshots / "20260101T000000Z", per_page=20)
    api.faults.failure_page = "coverages:2"

    with pytest.raises(PlanSourceApiError):
        api.pull(snapshots / "20260102T000000Z", per_page=20)

    assert [p.name for p in snapshots.iterdir()] == ["20260101T000000Z"]
    assert Workspace.open(tmp_path).newest_snapshot() == snapshots / "20260101T000000Z"


def test_out_folder_may_be_new_empty_or_an_earlier_snapshot(
    plansource_sandbox: Sandbox, tmp_path: Path
) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT)
    empty = tmp_path / "empty"
    empty.mkdir()
    api.pull(empty)
    first = json.loads((empty / "manifest.json").read_text())["pulled_at"]

    again = api.pull(empty)  # an earlier snapshot is replaced whole

    assert again.pulled_at.isoformat() != first and again.pulled_at.tzinfo == UTC
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("not a snapshot")
    with pytest.raises(UsageError) as refused:
        api.pull(busy)
    assert refused.value.code == "pull-out-not-empty"
    assert (busy / "notes.txt").exists()


def test_single_record_lookups(plansource_sandbox: Sandbox) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT)
    with PlanSourceClient(api.settings(), api.credentials) as client:
        assert client.subscriber(1001)["id"] == 1001
        with pytest.raises(PlanSourceApiError) as missing:
            client.subscriber(999999)
    assert missing.value.code == "plansource-http-error"
    assert "GET /subscriber/999999: HTTP 404" in missing.value.message
