"""The console on a workspace whose state is in PostgreSQL: real `edi run`s to the test sshd
(two carriers delivered, one delivery failed), a real reconciliation and an ignored
discrepancy, then every page and API endpoint shows what the store holds (the log's entries,
hashes, checkpoints and verification; the deliveries; the discrepancies), without PHI and
without a SQLite file; and another employer's store role is refused, never shown an empty
workspace."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from edi import stores
from edi.console.app import create_app
from edi.delivery_config import delivery_log
from edi.discrepancies import COLUMNS
from edi.workspace import Workspace
from tests.console.conftest import assert_no_phi
from tests.reconcile.rosters import PLANTED_VALUES, plant_one_per_kind, roster_from
from tests.scaleout.helpers import grant_employers
from tests.support.postgres import PostgresServer
from tests.support.servers import CarrierKey, Sshd, use_postgres_store
from tests.support.workspace import check_no_sqlite_state, edi, log_entries

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette suggests httpx2 for its TestClient
    from starlette.testclient import TestClient

AS_OF = ("--as-of", "2026-11-24")
NOW = ("--now", "2026-11-24T02:00:00+00:00")
RUN_ROWS = ("delivery", "delivery-failed", "validation-failed", "mass-termination-guard")
PAGES = ("/", "/deliveries", "/log", "/discrepancies")
API = ("/api/carriers", "/api/deliveries", "/api/discrepancies", "/api/log")


@dataclass(frozen=True)
class PgWorkspace:
    home: Path
    delivered: dict[str, Path]  # carrier → the 834 it received, decrypted


def deliver_unum_too(home: Path, sshd: Sshd, carrier_key: CarrierKey) -> None:
    """Unum delivers to the same sshd (its own folder), encrypted to the same test key."""
    inbox = sshd.inbox / "unum"
    inbox.mkdir()
    colonial = (home / "carriers" / "colonial.toml").read_text()
    settings = colonial[colonial.index("[encryption]") :]
    settings = settings.replace(f'remote_dir = "{sshd.inbox}"', f'remote_dir = "{inbox}"')
    profile = home / "carriers" / "unum.toml"
    profile.write_text(profile.read_text() + "\n" + settings)


def remote(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


@pytest.fixture
def pg_workspace(
    live_home: Path,
    sshd: Sshd,
    carrier_key: CarrierKey,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[PgWorkspace]:
    """live_home (workspace 'acme') on the store: colonial and unum delivered by `edi run`, a
    unum audit file that fails (the sshd is gone), colonial reconciled against a roster made
    from the file it received (one difference of each kind), one discrepancy ignored."""
    use_postgres_store(live_home, pg_url, monkeypatch)
    deliver_unum_too(live_home, sshd, carrier_key)
    home = ["--home", str(live_home)]
    delivered = {}
    for carrier, folder in (("colonial", sshd.inbox), ("unum", sshd.inbox / "unum")):
        code, _, err = edi(capsys, "run", "--carrier", carrier, *AS_OF, *home)
        assert code == 0, err
        (sent,) = remote(folder)
        plain = live_home / "received" / f"{carrier}.834"
        plain.parent.mkdir(exist_ok=True)
        plain.write_bytes(carrier_key.decrypt(sent))
        delivered[carrier] = plain
    sshd.server.stop()
    code, _, err = edi(capsys, "run", "--carrier", "unum", "--type", "audit", *AS_OF, *home)
    assert code == 1 and "connection-failed" in err, err
    roster = roster_from(delivered["colonial"], live_home / "in" / "roster.834", plant_one_per_kind)
    code, out, err = edi(
        capsys, *NOW, "reconcile", "--carrier", "colonial", str(roster), *AS_OF, "--json", *home
    )
    assert code == 1, err
    first = sorted(d["id"] for d in json.loads(out)["discrepancies"])[0]
    code, _, err = edi(capsys, "discrepancies", "ignore", first, "--note", "carrier agrees", *home)
    assert code == 0, err
    yield PgWorkspace(live_home, delivered)


def get(client: TestClient, path: str) -> Any:
    answer = client.get(path)
    assert answer.status_code == 200, (path, answer.text[:2000])
    assert_no_phi(answer.text, path)
    for value in PLANTED_VALUES:  # the roster's own planted PHI
        assert value not in answer.text, (path, value)
    return answer.json() if path.startswith("/api/") else answer.text


def expected_deliveries(entries: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """What `edi log list --json` says each deliveries row must show: the run's entry, and for a
    failed one the hashes of its last attempt."""
    found: dict[int, dict[str, Any]] = {}
    attempts: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        if entry["event"] == "attempt":
            attempts.setdefault(entry["carrier"], []).append(entry)
        elif entry["event"] in RUN_ROWS:
            tried = attempts.pop(entry["carrier"], [])
            source = tried[-1] if tried and entry["event"] != "delivery" else entry
            found[entry["seq"]] = {
                "carrier": entry["carrier"],
                "event": entry["event"],
                "outcome": entry.get("outcome"),
                "isa13": entry.get("isa13"),
                "attempt_entries": [a["seq"] for a in tried],
                "hashes": {
                    "plaintext_sha256": source.get("plaintext_sha256"),
                    "ciphertext_sha256": source.get("ciphertext_sha256"),
                    "entry_hash": entry["entry_hash"],
                },
            }
    return found


def test_the_console_shows_what_the_store_holds(
    pg_workspace: PgWorkspace, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    home = pg_workspace.home
    home_option = ("--home", str(home))
    entries = log_entries(capsys, home)
    code, out, err = edi(capsys, "log", "verify", "--json", "--home", str(home))
    assert code == 0, err
    verified = json.loads(out)
    assert verified["ok"] and verified["entries"] == len(entries)
    workspace = Workspace.open(home)
    held = stores.discrepancies(workspace).select(status="all")
    checkpoints = delivery_log(workspace).checkpoints()
    assert held and checkpoints and {d["status"] for d in held} == {"open", "ignored"}
    expected = expected_deliveries(entries)
    events = {row["event"] for row in expected.values()}
    assert {"delivery", "delivery-failed"} <= events
    assert {row["carrier"] for row in expected.values()} == {"colonial", "unum"}

    with TestClient(create_app(workspace)) as client:
        # /api/deliveries and /deliveries: each run of the log, with its hashes.
        shown = get(client, "/api/deliveries")["deliveries"]
        assert [row["seq"] for row in shown] == sorted(expected, reverse=True)
        for row in shown:
            assert {k: row[k] for k in expected[row["seq"]]} == expected[row["seq"]]
            assert row["failed"] == (row["event"] != "delivery")
        page = get(client, "/deliveries")
        for seq, row in expected.items():
            assert f'id="delivery-{seq}"' in page
            assert row["isa13"] is None or row["isa13"] in page
            for digest in (row["hashes"]["plaintext_sha256"], row["hashes"]["ciphertext_sha256"]):
                assert digest and digest in page
        # One delivery's page: its own entries of the log, and the 834 it recorded summarized.
        for seq, row in expected.items():
            detail = get(client, f"/api/deliveries/{seq}")
            assert [e["entry_hash"] for e in detail["entries"]] == [
                e["entry_hash"]
                for e in entries
                if e["seq"] in {seq, *row["attempt_entries"]} or e.get("delivery_entry") == seq
            ]
            html = get(client, f"/deliveries/{seq}")
            assert row["hashes"]["entry_hash"] in html
            if row["event"] == "delivery" and row["outcome"] == "delivered":
                assert detail["summary"] is not None, seq  # the outbox copy, hash-checked

        # /api/log and /log: the store's chain, head and signed checkpoints, verified.
        log = get(client, "/api/log")
        assert log["verification"] == {
            "ok": True,
            "status": "intact",
            "entries": verified["entries"],
            "checkpoints": verified["checkpoints"],
            "first_bad_entry": None,
            "problem": "",
        }
        assert log["head"] == {"count": entries[-1]["seq"], "hash": entries[-1]["entry_hash"]}
        assert [(c["entry_count"], c["head_hash"]) for c in log["checkpoints"]] == [
            (c.count, c.head) for c in checkpoints
        ]
        counted: dict[str, int] = {}
        for entry in entries:
            event = str(entry["event"])
            counted[event] = counted.get(event, 0) + 1
        assert log["events"] == counted
        assert "store" in log["database"] and ".sqlite" not in log["database"]
        page = get(client, "/log")
        assert "Intact." in page and f"{verified['entries']} entries re-hashed" in page
        assert f"{entries[-1]['seq']}:{entries[-1]['entry_hash']}" in page
        assert checkpoints[-1].head in page
        exported = client.get("/log/export.json")
        assert exported.status_code == 200
        assert_no_phi(exported.text, "/log/export.json")
        assert [e["entry_hash"] for e in exported.json()] == [e["entry_hash"] for e in entries]

        # /api/discrepancies and /discrepancies: the store's rows, statuses and all.
        found = get(client, "/api/discrepancies")
        assert found["reconciled"] is True
        # Every column as the store holds it (colonial's member ids are subscriber codes, shown
        # as they are), its notes as text, in the SQLite console's order.
        ordered = sorted(held, key=lambda d: (d["kind"], d["carrier"], d["first_seen"], d["id"]))
        assert found["discrepancies"] == [
            {
                **{name: d[name] for name in COLUMNS},
                "notes": [json.dumps(note, sort_keys=True) for note in d["notes"]],
            }
            for d in ordered
        ]
        page = get(client, "/discrepancies")
        for item in held:
            assert item["id"] in page and f'id="kind-{item["kind"]}"' in page
        assert "carrier agrees" in page

        # /api/carriers and /: each carrier's last run from the log, open discrepancies from
        # the store, the log's verification.
        carriers = {c["carrier"]: c for c in get(client, "/api/carriers")["carriers"]}
        opened = sum(1 for d in held if d["carrier"] == "colonial" and d["status"] == "open")
        assert carriers["colonial"]["open_discrepancies"] == opened < len(held)
        assert carriers["unum"]["open_discrepancies"] == 0
        assert {c["log_status"] for c in carriers.values()} == {"intact"}
        for name in ("colonial", "unum"):
            own = {s: row for s, row in expected.items() if row["carrier"] == name}
            last = max(own)
            sent = max(s for s, row in own.items() if row["outcome"] == "delivered")
            assert carriers[name]["last_attempt"]["seq"] == last, carriers[name]
            assert carriers[name]["last_success"]["seq"] == sent
            assert carriers[name]["last_success"]["isa13"] == own[sent]["isa13"]
            assert carriers[name]["failing"] == (own[last]["event"] == "delivery-failed")
        assert carriers["unum"]["failing"] and not carriers["colonial"]["failing"]
        page = get(client, "/")
        assert "intact" in page and f">{opened}</a>" in page

        # /api/carriers/NAME/diff: the next change file against the store's baseline, as
        # `edi diff` previews it.
        for name in ("colonial", "unum"):
            code, out, err = edi(capsys, "diff", "--carrier", name, *AS_OF, "--json", *home_option)
            assert code == 0, err
            preview = json.loads(out)
            shown = get(client, f"/api/carriers/{name}/diff?as_of=2026-11-24")
            assert shown["has_baseline"] and shown["baseline_active_subscribers"] > 0
            assert {k: v for k, v in shown.items() if k != "members"} == {
                k: v for k, v in preview.items() if k != "members"
            } | {"as_of": "2026-11-24"}
            assert [(m["kind"], m["member"]) for m in shown["members"]] == [
                (m["kind"], m["member"]) for m in preview["members"]
            ]
            get(client, f"/carriers/{name}/diff?as_of=2026-11-24")

    # The console read the store only: no SQLite file of the state appeared.
    check_no_sqlite_state(home)


def test_another_employers_role_cannot_see_this_workspace_in_the_console(
    pg_workspace: PgWorkspace,
    pg_url: str,
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = pg_workspace.home
    entries = log_entries(capsys, home)
    held = stores.discrepancies(Workspace.open(home)).select(status="all")
    passwords = {name: f"{name}-Console-7" for name in ("acme", "globex")}
    urls = grant_employers(capsys, monkeypatch, postgres_server, pg_url, passwords)
    secrets = [entry["entry_hash"] for entry in entries] + [d["id"] for d in held]
    with TestClient(create_app(Workspace.open(home))) as client:  # as the store's owner
        as_owner = get(client, "/api/deliveries")

    # acme's own role: the console shows acme's deliveries, and never the role's password.
    monkeypatch.setenv("EDI_STORE_URL", urls["acme"])
    with TestClient(create_app(Workspace.open(home))) as client:
        assert get(client, "/api/deliveries") == as_owner
        seqs = [row["seq"] for row in as_owner["deliveries"]]
        assert seqs and len(get(client, "/api/discrepancies")["discrepancies"]) == len(held)
        for path in PAGES + API:
            assert "acme-Console-7" not in client.get(path).text, path

    # globex's role on acme's workspace: every page and endpoint is refused, naming why, and
    # shows none of acme's entries, hashes or discrepancies (not an empty workspace either).
    monkeypatch.setenv("EDI_STORE_URL", urls["globex"])
    with TestClient(create_app(Workspace.open(home))) as client:
        for path in PAGES + API:
            answer = client.get(path)
            assert answer.status_code == 403, (path, answer.status_code, answer.text[:500])
            text = answer.text
            # The overview asks for the discrepancies before it reads the log's entries.
            refused_with = (
                "log-access-denied" if "log" in path or "deliver" in path else "store-access-denied"
            )
            what = "delivery log" if refused_with == "log-access-denied" else "discrepancies"
            refusal = f"this store role may not read the {what} of workspace 'acme'"
            if path.startswith("/api/"):
                error = answer.json()["error"]
                assert (error["code"], error["message"]) == (refused_with, refusal), path
            else:
                assert f"<strong>[{refused_with}]</strong> {escape(refusal)}" in text, path
            for secret in secrets:
                assert secret not in text, (path, secret)
            assert "globex-Console-7" not in text and "No deliveries" not in text
            assert_no_phi(text, path)
        for seq in seqs:
            refused = client.get(f"/api/deliveries/{seq}")
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "log-access-denied"
    check_no_sqlite_state(home)


def test_a_console_on_an_empty_store_shows_nothing_delivered_and_nothing_reconciled(
    live_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any run: the store's (empty) log and no reconciliation, not an error and not a
    SQLite file created by reading."""
    use_postgres_store(live_home, pg_url, monkeypatch)
    with TestClient(create_app(Workspace.open(live_home))) as client:
        assert get(client, "/api/deliveries") == {"deliveries": []}
        assert get(client, "/api/discrepancies") == {"reconciled": False, "discrepancies": []}
        log = get(client, "/api/log")
        assert log["head"] is None and log["verification"]["ok"]
        assert "No deliveries logged yet" in get(client, "/deliveries")
        assert 'id="no-reconciliation"' in get(client, "/discrepancies")
    check_no_sqlite_state(live_home)
