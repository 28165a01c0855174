"""`edi run`, `edi send` and `edi log` end to end: real sshd, real gpg, real SMTP."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

import transmit
from edi.pipeline import FileFacts
from tests.support.servers import CarrierKey, SmtpServer, Sshd
from tests.support.workspace import REPO, assert_valid_834, edi, log_entries

AS_OF = ["--as-of", "2026-11-24"]


def test_run_delivers_a_file_gpg_decrypts_to_a_valid_834(
    live_home: Path, sshd: Sshd, carrier_key: CarrierKey, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = edi(capsys, "run", "--carrier", "colonial", *AS_OF)
    assert code == 0, err
    (delivered,) = sshd.inbox.iterdir()
    assert out.strip() == str(delivered)
    generated = next((live_home / "out" / "colonial").glob("*.834"))
    plain = carrier_key.decrypt(delivered)
    assert plain == generated.read_bytes()
    decrypted = live_home / "decrypted.834"
    decrypted.write_bytes(plain)
    assert_valid_834(decrypted)
    entry = next(e for e in log_entries(capsys, live_home) if e["event"] == "delivery")
    facts = FileFacts.scan(generated)
    expected = {
        "carrier": "colonial",
        "outcome": "delivered",
        "isa13": facts.isa13,
        "gs06": facts.gs06,
        "st02": "0001",
        "member_count": facts.members,
        "coverage_count": facts.coverage_lines,
        "plaintext_sha256": transmit.sha256_file(generated),
        "ciphertext_sha256": transmit.sha256_file(delivered),
        "recipient_fingerprint": carrier_key.fingerprint,
        "remote_host": "127.0.0.1",
        "remote_port": sshd.facts.port,
        "host_key_fingerprint": sshd.facts.host_key_fingerprint,
        "remote_final_path": str(delivered),
        "attempt": 1,
        "file_id": generated.name,
    }
    assert {k: entry.get(k) for k in expected} == expected
    temp = str(entry["remote_temp_path"])
    assert re.fullmatch(
        rf"{re.escape(str(sshd.inbox))}/\.{re.escape(delivered.name)}\.[0-9a-f]{{12}}\.part", temp
    )
    assert entry["plaintext_size"] == generated.stat().st_size
    assert entry["ciphertext_size"] == delivered.stat().st_size
    assert {"host", "user"} <= set(entry["actor"])  # type: ignore[arg-type]
    assert edi(capsys, "log", "verify")[0] == 0


def test_second_run_sends_nothing_and_says_so(
    live_home: Path, sshd: Sshd, capsys: pytest.CaptureFixture[str]
) -> None:
    assert edi(capsys, "run", "-c", "colonial", *AS_OF)[0] == 0
    (delivered,) = sshd.inbox.iterdir()
    stamp = delivered.stat().st_mtime_ns
    code, _, err = edi(capsys, "run", "-c", "colonial", *AS_OF)
    assert code == 0 and "already delivered" in err and "nothing was sent" in err
    assert list(sshd.inbox.iterdir()) == [delivered] and delivered.stat().st_mtime_ns == stamp
    outcomes = [e["outcome"] for e in log_entries(capsys, live_home) if e["event"] == "delivery"]
    assert outcomes == ["delivered", "already-delivered"]


@pytest.mark.sqlite_only
def test_crash_after_upload_before_the_log_entry_heals(
    live_home: Path, sshd: Sshd, capsys: pytest.CaptureFixture[str]
) -> None:
    assert edi(capsys, "run", "-c", "colonial", *AS_OF)[0] == 0
    (delivered,) = sshd.inbox.iterdir()
    stamp = delivered.stat().st_mtime_ns
    log_db = live_home / "state" / "delivery-log.sqlite"
    log_db.unlink()  # as if the process died after the upload, before anything was logged
    for leftover in log_db.parent.glob("delivery-log.sqlite-*"):
        leftover.unlink()
    # ... in a new workspace: a log deleted while its witness remains is tampering instead
    (live_home / "state" / "witness" / "delivery-log.witness.jsonl").unlink()
    assert edi(capsys, "run", "-c", "colonial", *AS_OF)[0] == 0
    assert list(sshd.inbox.iterdir()) == [delivered] and delivered.stat().st_mtime_ns == stamp
    entry = next(e for e in log_entries(capsys, live_home) if e["event"] == "delivery")
    # The transfer happened in the killed run; this entry records it, confirmed by content.
    assert entry["outcome"] == "delivered"
    assert entry["confirmed_by"] == "remote-content-sha256"


def test_delivery_failure_is_logged_alerted_and_exits_1(
    live_home: Path, sshd: Sshd, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = live_home / "carriers" / "colonial.toml"
    profile.write_text(
        profile.read_text().replace(sshd.facts.host_key_fingerprint, "SHA256:" + "B" * 43)
    )
    code, out, err = edi(capsys, "run", "-c", "colonial", *AS_OF)
    assert code == 1 and "host-key-mismatch" in err and out == ""
    assert list(sshd.inbox.iterdir()) == []
    (mail,) = smtp_server.messages
    assert "delivery-failed" in mail["Subject"] and "host-key-mismatch" in mail.get_payload()
    failed = [e for e in log_entries(capsys, live_home) if e["outcome"] == "failed"]
    assert [e["event"] for e in failed] == ["attempt", "delivery-failed"]
    assert failed[-1]["alerts_sent"] == ["email:sent"]
    assert_no_phi(mail.get_payload() + err)


def test_send_refuses_an_invalid_file(
    live_home: Path, sshd: Sshd, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = next((REPO / "samples" / "out").glob("ACME_colonial_*.834"))
    broken = live_home / "broken.834"
    broken.write_text(
        sample.read_text().replace("HD*021**AH*ACCIDENT-1*FAM~", "HD*021**AH*ACCIDENT-1*XYZ~")
    )
    code, _, err = edi(capsys, "send", str(broken), "--carrier", "colonial")
    assert code == 1 and "not sent" in err
    assert list(sshd.inbox.iterdir()) == []
    assert "validation-failed" in smtp_server.messages[0]["Subject"]


def test_send_delivers_an_existing_valid_file(
    live_home: Path, sshd: Sshd, carrier_key: CarrierKey, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = next((REPO / "samples" / "out").glob("ACME_colonial_*.834"))
    code, out, _ = edi(capsys, "send", str(sample), "-c", "colonial", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["outcome"] == "delivered" and summary["isa13"] == "000000001"
    assert carrier_key.decrypt(Path(summary["remote_path"])) == sample.read_bytes()


def test_log_commands_for_auditors(live_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert edi(capsys, "run", "-c", "colonial", *AS_OF)[0] == 0
    code, out, _ = edi(capsys, "log", "list", "--json")
    logged = json.loads(out)
    code, out, _ = edi(capsys, "log", "export", "--format", "csv", "--carrier", "colonial")
    assert code == 0 and out.splitlines()[0].startswith("seq,recorded_at,event")
    assert len(out.splitlines()) == 1 + len(logged)
    code, out, _ = edi(capsys, "log", "show", "1")
    assert code == 0 and json.loads(out)["seq"] == 1
    assert json.loads(out)["entry_hash"] == logged[0]["entry_hash"]
    code, out, _ = edi(capsys, "log", "report", "--html", str(live_home / "audit.html"))
    page = (live_home / "audit.html").read_text()
    assert code == 0 and "colonial" in page and logged[-1]["entry_hash"] in page
    assert edi(capsys, "log", "verify")[0] == 0


@pytest.mark.sqlite_only  # the PostgreSQL log's tampering: tests/scaleout/test_pg_log.py
def test_a_rewritten_entry_is_named_by_verify(
    live_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert edi(capsys, "run", "-c", "colonial", *AS_OF)[0] == 0
    db = sqlite3.connect(live_home / "state" / "delivery-log.sqlite", isolation_level=None)
    db.execute("DROP TRIGGER entries_no_update")
    db.execute(
        "UPDATE entries SET body = replace(body, '\"delivered\"', '\"failed\"') WHERE seq = 2"
    )
    code, out, _ = edi(capsys, "log", "verify")
    assert code == 1 and "first bad entry 2" in out


def assert_no_phi(text: str) -> None:
    """Names and SSNs of the sample's people never appear in alerts or errors."""
    subscribers = json.loads((REPO / "samples" / "plansource" / "subscribers.json").read_text())
    for page in subscribers:
        for person in page["data"]:
            assert person["last_name"].upper() not in text.upper()
            assert person["ssn"].replace("-", "") not in text.replace("-", "")
