"""Every page and API answer of the console over HTTP (starlette's TestClient), on a workspace
after `edi demo` plus one failed delivery, an ack and a reconciliation database."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from edi.console.app import create_app
from edi.workspace import Workspace
from tests.console.conftest import ConsoleHome, TestClient, assert_no_phi, write_discrepancies

PAGES = ["/", "/deliveries", "/log", "/discrepancies", "/carriers/colonial/diff"]
APIS = ["/api/carriers", "/api/deliveries", "/api/discrepancies", "/api/log"]


def every_path(home: ConsoleHome) -> list[str]:
    seqs = [*home.delivered.values(), home.failed_seq]
    return [
        *PAGES,
        *[f"/deliveries/{seq}" for seq in seqs],
        *APIS,
        *[f"/api/deliveries/{seq}" for seq in seqs],
        "/api/carriers/unum/diff",
        "/deliveries?carrier=unum",
        "/log/export.csv",
        "/log/export.json",
        "/log/public-key.pem",
        "/static/console.css",
    ]


def test_every_page_and_api_answer_carries_no_phi(
    client: TestClient, console_home: ConsoleHome
) -> None:
    for path in every_path(console_home):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_no_phi(response.text, path)


def test_the_unum_summary_withholds_its_ssn_member_ids(
    client: TestClient, console_home: ConsoleHome
) -> None:
    # Unum's profile puts the SSN in REF*0F: the summary shows the codes, not the id.
    detail = client.get(f"/api/deliveries/{console_home.delivered['unum']}").json()
    members = detail["summary"]["members"]
    assert members and {m["member_id"] for m in members} == {"(withheld: SSN)"}
    colonial = client.get(f"/api/deliveries/{console_home.delivered['colonial']}").json()
    assert colonial["summary"]["members"][0]["member_id"].startswith("AW")


def test_overview_shows_each_carrier_the_failure_and_the_workspace(
    client: TestClient, console_home: ConsoleHome
) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for name in ("Colonial Life", "Unum", "Allstate Benefits"):
        assert name in html
    # The workspace is named by edi.toml's `name` (the store pass's "acme"), else its folder.
    named = console_home.workspace.settings.name or console_home.home.name
    assert 'id="sample-data"' in html and named in html
    assert 'id="failures"' in html and "connection-failed" in html
    assert '<tr id="carrier-unum" class="failing">' in html
    assert '<tr id="carrier-colonial" class="">' in html
    assert 'id="log-status">intact' in html

    rows = {row["carrier"]: row for row in client.get("/api/carriers").json()["carriers"]}
    assert set(rows) == {"allstate", "colonial", "unum"}
    unum, colonial = rows["unum"], rows["colonial"]
    assert unum["failing"] and unum["consecutive_failures"] == 1
    assert unum["last_attempt"]["event"] == "delivery-failed"
    assert unum["last_success"]["seq"] == console_home.delivered["unum"]
    assert not colonial["failing"] and colonial["consecutive_failures"] == 0
    assert colonial["last_success"]["seq"] == console_home.delivered["colonial"]
    assert colonial["ack"] == "accepted" and rows["allstate"]["ack"] == "awaiting"
    assert colonial["open_discrepancies"] == 2 and unum["open_discrepancies"] == 1
    assert rows["allstate"]["open_discrepancies"] == 0
    assert all(row["next_run"] and row["log_status"] == "intact" for row in rows.values())
    workspace = client.get("/api/carriers").json()["workspace"]
    assert workspace["sample_data"] is True and workspace["name"] == named


def test_deliveries_list_labelled_hashes_and_filter(
    client: TestClient, console_home: ConsoleHome
) -> None:
    html = client.get("/deliveries").text
    assert "834 SHA-256" in html and "PGP SHA-256" in html
    assert f'id="delivery-{console_home.failed_seq}" class="failing"' in html
    rows = client.get("/api/deliveries").json()["deliveries"]
    assert [r["seq"] for r in rows] == sorted((r["seq"] for r in rows), reverse=True)
    colonial = next(r for r in rows if r["seq"] == console_home.delivered["colonial"])
    assert colonial["outcome"] == "delivered" and colonial["attempts"] == 1
    assert colonial["isa13"] == "000000001" and colonial["file_type"] == "full"
    assert colonial["member_count"] > 0 and colonial["coverage_count"] > 0
    assert colonial["remote_path"].endswith(".834.pgp") and colonial["ack"] == "accepted"
    assert len(colonial["hashes"]["plaintext_sha256"]) == 64
    assert len(colonial["hashes"]["ciphertext_sha256"]) == 64
    failed = next(r for r in rows if r["seq"] == console_home.failed_seq)
    assert failed["failed"] and failed["attempts"] == 3 and failed["remote_path"] is None
    assert failed["error_code"] == "connection-failed" and failed["file_type"] == "audit"

    only_unum = client.get("/api/deliveries?carrier=unum").json()["deliveries"]
    assert only_unum and {r["carrier"] for r in only_unum} == {"unum"}
    assert "colonial" not in client.get("/deliveries?carrier=unum").text.split("<tbody>")[1]
    today = rows[0]["recorded_at"][:10]
    assert client.get(f"/api/deliveries?since={today}&until={today}").json()["deliveries"]
    assert client.get("/api/deliveries?until=2020-01-01").json() == {"deliveries": []}
    assert "No deliveries match" in client.get("/deliveries?since=2999-01-01").text
    assert 'id="deliveries-truncated"' not in html
    assert client.get("/deliveries?since=yesterday").status_code == 400
    assert client.get("/api/deliveries?carrier=nobody").status_code == 404


def test_a_delivery_page_has_its_entries_and_the_834_summary(
    client: TestClient, console_home: ConsoleHome
) -> None:
    seq = console_home.delivered["colonial"]
    detail = client.get(f"/api/deliveries/{seq}").json()
    events = [e["event"] for e in detail["entries"]]
    assert events == ["attempt", "delivery", "ack"]
    summary = detail["summary"]
    assert summary["interchange"]["isa13"] == detail["isa13"]
    assert summary["counts"]["members"] == detail["member_count"]
    assert summary["counts"]["coverage_lines"] == detail["coverage_count"]
    assert {"relationship", "maintenance", "coverages"} <= set(summary["members"][0])
    html = client.get(f"/deliveries/{seq}").text
    assert "834 summary" in html and "REF*0F" in html and "(its SHA-256 matches the log)" in html

    failed = client.get(f"/api/deliveries/{console_home.failed_seq}").json()
    assert [e["event"] for e in failed["entries"]] == ["attempt"] * 3 + ["delivery-failed"]
    assert failed["summary"]["interchange"]["bgn_action"] == "4"  # the audit file, still local
    page = client.get(f"/deliveries/{console_home.failed_seq}").text
    assert 'role="alert"' in page and "connection-failed" in page

    assert client.get("/deliveries/999").status_code == 404
    assert client.get("/deliveries/1").status_code == 404  # an attempt, not a run
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "Back to the overview" in missing.text
    assert client.get("/api/deliveries/999").json()["error"]["status"] == 404


def test_a_summary_needs_the_file_the_log_names(console_home: ConsoleHome, tmp_path: Path) -> None:
    # The 834 is read only if its SHA-256 is the logged one.
    seq = console_home.delivered["allstate"]
    with TestClient(create_app(console_home.workspace)) as client:
        detail = client.get(f"/api/deliveries/{seq}").json()
        path = console_home.home / detail["summary_source"]
        original = path.read_bytes()
        try:
            path.write_bytes(original.replace(b"~", b"~\n", 1))
            assert client.get(f"/api/deliveries/{seq}").json()["summary"] is None
            assert "not on this machine" in client.get(f"/deliveries/{seq}").text
        finally:
            path.write_bytes(original)


def test_log_page_verification_checkpoints_key_and_exports(
    client: TestClient, console_home: ConsoleHome
) -> None:
    info = client.get("/api/log").json()
    verification = info["verification"]
    assert verification["ok"] and verification["entries"] == info["head"]["count"]
    assert info["checkpoints"] and info["newest_checkpoint"] == info["checkpoints"][-1]
    assert info["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    html = client.get("/log").text
    assert f"{info['head']['count']}:{info['head']['hash']}" in html
    assert "Intact." in html and "BEGIN PUBLIC KEY" in html and "edi log verify" in html
    assert 'href="/log/export.csv"' in html and 'href="/log/export.json"' in html

    exported = client.get("/log/export.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == info["head"]["count"] and rows[-1]["entry_hash"] == info["head"]["hash"]
    as_json = json.loads(client.get("/log/export.json").text)
    assert [e["entry_hash"] for e in as_json][-1] == info["head"]["hash"]
    assert client.get("/log/public-key.pem").text == info["public_key"]
    assert client.get("/log/export.xml").status_code == 404


def test_discrepancies_grouped_by_kind_with_status_and_notes(
    client: TestClient, console_home: ConsoleHome
) -> None:
    answer = client.get("/api/discrepancies").json()
    assert answer["reconciled"] and len(answer["discrepancies"]) == 4
    unum = next(d for d in answer["discrepancies"] if d["carrier"] == "unum")
    assert unum["member_id"] == "(withheld: SSN)" and unum["notes"]
    html = client.get("/discrepancies").text
    for kind in ("missing-at-carrier", "plan-mismatch", "tier-mismatch", "demographic-mismatch"):
        assert f'id="kind-{kind}"' in html
    assert "ticket OPS-17" in html and "resolved" in html and "3 open" in html


def bare_workspace(console_home: ConsoleHome, tmp_path: Path) -> Path:
    """The demo's carrier profiles, no source, no state."""
    bare = tmp_path / "bare"
    (bare / "carriers").mkdir(parents=True)
    for profile in (console_home.home / "carriers").glob("*.toml"):
        (bare / "carriers" / profile.name).write_text(profile.read_text())
    return bare


@pytest.mark.sqlite_only  # a bare SQLite copy of the workspace
def test_without_reconciliation_the_pages_say_so(console_home: ConsoleHome, tmp_path: Path) -> None:
    bare = bare_workspace(console_home, tmp_path)
    with TestClient(create_app(Workspace.open(bare))) as client:
        assert 'id="no-reconciliation"' in client.get("/discrepancies").text
        assert client.get("/api/discrepancies").json() == {
            "reconciled": False,
            "discrepancies": [],
        }
        assert "no reconciliation yet" in client.get("/").text
        rows = client.get("/api/carriers").json()["carriers"]
        assert all(r["open_discrepancies"] is None and r["last_success"] is None for r in rows)
        assert "No deliveries logged yet" in client.get("/deliveries").text
        assert "No signing key yet" in client.get("/log").text
        assert client.get("/log/public-key.pem").status_code == 404
        assert not (bare / "state" / "keys").exists()  # reading created no key
        # A configuration problem is shown with its code and hint, as the CLI would.
        page = client.get("/carriers/colonial/diff")
        assert page.status_code == 500 and "source-not-configured" in page.text
        answer = client.get("/api/carriers/colonial/diff").json()["error"]
        assert answer["code"] == "source-not-configured" and answer["hint"]


@pytest.mark.sqlite_only  # writes a SQLite discrepancies file
def test_text_from_the_workspace_is_escaped(console_home: ConsoleHome, tmp_path: Path) -> None:
    bare = bare_workspace(console_home, tmp_path)
    path = bare / "state" / "discrepancies.sqlite"
    write_discrepancies(path, "AW1001")
    with closing(sqlite3.connect(path)) as db:
        db.execute(
            "UPDATE discrepancies SET notes = ? WHERE id = 'd-001'",
            (json.dumps(['<script>alert("x")</script> & <b>bold</b>']),),
        )
        db.commit()
    with TestClient(create_app(Workspace.open(bare))) as client:
        html = client.get("/discrepancies").text
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html


def test_diff_preview_names_members_by_plansource_id(
    client: TestClient, console_home: ConsoleHome
) -> None:
    ended = console_home.ended_coverage
    diff = client.get("/api/carriers/colonial/diff?as_of=2026-12-03").json()
    assert diff["has_baseline"] and diff["as_of"] == "2026-12-03"
    subscriber = next(m for m in diff["members"] if m["dependent_id"] is None)
    assert subscriber["subscriber_id"] == str(ended["subscriber_id"])
    assert subscriber["member"] == f"subscriber id={ended['subscriber_id']}"
    assert subscriber["kind"] == "termination" and subscriber["ins03"] == "024"
    html = client.get("/carriers/colonial/diff?as_of=2026-12-03").text
    assert f"subscriber id={ended['subscriber_id']}" in html and "024" in html
    assert client.get("/api/carriers/unum/diff").json()["members"] == []
    assert client.get("/carriers/nobody/diff").status_code == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_read_only_every_other_method_is_refused(client: TestClient, method: str) -> None:
    for path in ("/", "/api/log", "/deliveries/1", "/nothing-here"):
        response = client.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == "GET, HEAD"


def test_head_answers_like_get_without_a_body(client: TestClient) -> None:
    for path in ("/", "/api/carriers"):
        response = client.head(path)
        assert response.status_code == 200 and response.content == b""


def test_security_headers_on_pages_api_and_errors(client: TestClient) -> None:
    for path in ("/", "/api/carriers", "/deliveries/999", "/static/console.css"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'none'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert "server" not in headers
    assert client.get("/api/carriers").headers["cache-control"] == "no-store"
    assert client.get("/").headers["cache-control"] == "no-store"


def test_pages_load_nothing_from_outside_and_run_no_script(
    client: TestClient, console_home: ConsoleHome
) -> None:
    for path in every_path(console_home):
        if not path.startswith(("/api/", "/log/", "/static/")):
            html = client.get(path).text.lower()
            assert "<script" not in html and " on" + "click" not in html, path
            assert "http://" not in html and "https://" not in html, path
            assert 'href="/static/console.css"' in html


def test_the_demo_ends_with_the_serve_command(console_home: ConsoleHome) -> None:
    last = console_home.demo_output.strip().splitlines()[-1]
    assert f"edi --home {console_home.home} serve" in last and "127.0.0.1:8834" in last


@pytest.mark.sqlite_only  # tampers with the SQLite log; the store's: test_pg_log
def test_a_tampered_log_is_shown_as_such(console_home: ConsoleHome, tmp_path: Path) -> None:
    bare = bare_workspace(console_home, tmp_path)
    (bare / "state").mkdir()
    source = console_home.workspace.state_dir
    with (
        closing(sqlite3.connect(source / "delivery-log.sqlite")) as live,
        closing(sqlite3.connect(bare / "state" / "delivery-log.sqlite")) as copy,
    ):
        live.backup(copy)
    shutil.copytree(source / "keys", bare / "state" / "keys")
    with closing(sqlite3.connect(bare / "state" / "delivery-log.sqlite")) as db:
        db.execute("DROP TRIGGER entries_no_update")
        body = db.execute("SELECT body FROM entries WHERE seq = 3").fetchone()[0]
        db.execute(
            "UPDATE entries SET body = ? WHERE seq = 3",
            (body.replace('"attempt":1', '"attempt":2'),),
        )
        db.commit()
    with TestClient(create_app(Workspace.open(bare))) as client:
        verification = client.get("/api/log").json()["verification"]
        assert not verification["ok"] and verification["first_bad_entry"] == 3
        assert 'id="log-status">TAMPERED' in client.get("/").text
        assert "TAMPERED." in client.get("/log").text
        rows = client.get("/api/carriers").json()["carriers"]
        assert {r["log_status"] for r in rows} == {"TAMPERED"}


def test_a_long_file_lists_its_first_members_and_counts_them_all(
    console_home: ConsoleHome,
) -> None:
    from edi.console.summary import summarize_834

    detail_path = next((console_home.home / "out" / "colonial").glob("*.834"))
    summary = summarize_834(detail_path, "subscriber_code", shown=5)
    assert summary["members_shown"] == len(summary["members"]) == 5
    assert summary["counts"]["members"] > 5


def test_the_deliveries_page_lists_the_newest_when_there_are_many(
    console_home: ConsoleHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edi.console import app as console_app

    monkeypatch.setattr(console_app, "PAGE_ROWS", 2)
    with TestClient(create_app(console_home.workspace)) as client:
        html = client.get("/deliveries").text
        everything = client.get("/api/deliveries").json()["deliveries"]
    assert html.count('<tr id="delivery-') == 2 and len(everything) > 2
    assert f"The newest 2 of {len(everything)}" in html
    assert f'id="delivery-{everything[0]["seq"]}"' in html


@pytest.mark.sqlite_only  # reads the SQLite file the recipe names
def test_the_pages_recipe_verifies_the_log_without_the_tool(
    client: TestClient, console_home: ConsoleHome
) -> None:
    """An auditor follows "How to verify it yourself" on a copy of the database: the chain of
    entries and every checkpoint's signature check out exactly as the page words them."""
    import base64
    import hashlib
    import re
    from html import unescape

    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    page = unescape(client.get("/log").text)
    recipe = page[page.index("How to verify it yourself") :]
    entries_table = re.search(r"for each row of (\w+) in seq order", re.sub("<[^>]+>", "", recipe))
    signed_text = re.search(r'over the text "([A-Z_:]+)"', re.sub("<[^>]+>", "", recipe))
    assert entries_table is not None and signed_text is not None, recipe[:800]
    key = load_pem_public_key(client.get("/log/public-key.pem").text.encode())
    database = console_home.workspace.state_dir / "delivery-log.sqlite"
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute(
            f"SELECT seq, body, prev_hash, entry_hash FROM {entries_table[1]} ORDER BY seq"
        ).fetchall()
        points = db.execute(
            "SELECT entry_count, head_hash, signature, prev_hash FROM checkpoints ORDER BY id"
        ).fetchall()
    previous = "0" * 64
    for _seq, body, prev_hash, entry_hash in rows:
        assert prev_hash == previous
        assert hashlib.sha256((prev_hash + body).encode()).hexdigest() == entry_hash
        previous = entry_hash
    hashes = {seq: entry_hash for seq, _, _, entry_hash in rows}
    previous_point = "0" * 64
    for count, head, signature, prev_hash in points:
        assert prev_hash == previous_point and hashes[count] == head
        fields = {"ENTRY_COUNT": str(count), "HEAD_HASH": head, "PREV_HASH": prev_hash}
        message = ":".join(fields[name] for name in signed_text[1].split(":"))
        key.verify(base64.b64decode(signature), message.encode())  # type: ignore[union-attr,call-arg]
        previous_point = hashlib.sha256(message.encode()).hexdigest()
    assert len(points) >= 1 and len(rows) == client.get("/api/log").json()["head"]["count"]
