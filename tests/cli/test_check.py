"""`edi check` against the real test sshd, gpg and SMTP server: a good profile passes every
check; a wrong host key, a missing folder, a down server or a bad key fail the right step."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import SmtpServer, Sshd, make_carrier_key
from tests.support.workspace import edi


def check(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, dict[str, Any]]:
    code, out, err = edi(capsys, "check", "--carrier", "colonial", "--json", *flags)
    assert "Traceback" not in err
    result = json.loads(out)
    return code, {c["check"]: c for c in result["checks"]}


def edit_profile(home: Path, old: str, new: str) -> None:
    profile = home / "carriers" / "colonial.toml"
    text = profile.read_text()
    assert old in text
    profile.write_text(text.replace(old, new))


def test_good_profile_passes_every_check(
    live_home: Path, sshd: Sshd, capsys: pytest.CaptureFixture[str]
) -> None:
    code, checks = check(capsys)
    assert code == 0, checks
    assert [name for name, c in checks.items() if c["status"] != "pass"] == []
    assert list(checks) == [
        "resolve",
        "connect",
        "host key",
        "authenticate",
        "remote folder",
        "writable",
        "PGP key",
        "alerts",
    ]
    assert sshd.facts.host_key_fingerprint in checks["host key"]["detail"]
    probe = re.search(r"\.edi-check-\w+\.tmp", checks["writable"]["detail"])
    assert probe is not None
    assert list(sshd.inbox.iterdir()) == [], "the probe file is removed again"
    # The table a person reads
    code, out, err = edi(capsys, "check", "-c", "colonial")
    assert code == 0 and "colonial: all checks passed" in err
    assert out.splitlines()[1].startswith("✓\tresolve\tpass")


def test_no_write_writes_nothing(
    live_home: Path, sshd: Sshd, capsys: pytest.CaptureFixture[str]
) -> None:
    code, checks = check(capsys, "--no-write")
    assert code == 0
    assert checks["writable"]["status"] == "skipped"
    assert "--no-write" in checks["writable"]["detail"]


def test_wrong_host_key_fails_and_stops(
    live_home: Path, sshd: Sshd, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "SHA256:" + "A" * 43
    edit_profile(live_home, sshd.facts.host_key_fingerprint, wrong)
    code, checks = check(capsys)
    assert code == 1
    assert checks["connect"]["status"] == "pass"
    assert checks["host key"]["status"] == "fail"
    assert "[host-key-mismatch]" in checks["host key"]["detail"]
    assert sshd.facts.host_key_fingerprint in checks["host key"]["detail"]
    assert checks["host key"]["hint"]
    assert {checks[n]["status"] for n in ("authenticate", "remote folder", "writable")} == {
        "skipped"
    }
    assert list(sshd.inbox.iterdir()) == []


def test_missing_remote_folder(
    live_home: Path, sshd: Sshd, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_profile(live_home, f'remote_dir = "{sshd.inbox}"', f'remote_dir = "{sshd.inbox}-gone"')
    code, checks = check(capsys)
    assert code == 1
    assert checks["authenticate"]["status"] == "pass"
    assert checks["remote folder"]["status"] == "fail"
    assert checks["remote folder"]["detail"] == "the folder does not exist on the server"
    assert "remote_dir" in checks["remote folder"]["hint"]
    assert checks["writable"]["status"] == "skipped"


def test_server_down(live_home: Path, sshd: Sshd, capsys: pytest.CaptureFixture[str]) -> None:
    sshd.server.stop()
    code, checks = check(capsys)
    assert code == 1
    assert checks["resolve"]["status"] == "pass" and checks["connect"]["status"] == "fail"
    assert checks["host key"]["status"] == "skipped"


def test_acks_folder(live_home: Path, sshd: Sshd, capsys: pytest.CaptureFixture[str]) -> None:
    outbound = sshd.facts.root / "outbound"
    profile = live_home / "carriers" / "colonial.toml"
    profile.write_text(profile.read_text() + f'\n[acks]\nremote_dir = "{outbound}"\n')
    code, checks = check(capsys)
    assert code == 1 and checks["acks folder"]["status"] == "fail"
    outbound.mkdir()
    code, checks = check(capsys)
    assert code == 0 and checks["acks folder"]["status"] == "pass"


def test_pgp_key_expiring_soon_warns(
    live_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    soon = make_carrier_key(tmp_path, "soon", expire="10d")
    (live_home / "carriers" / "colonial.asc").write_text(soon.public_key_file.read_text())
    profile = live_home / "carriers" / "colonial.toml"
    profile.write_text(
        re.sub(
            r'recipient_fingerprint = "\w+"',
            f'recipient_fingerprint = "{soon.fingerprint}"',
            profile.read_text(),
        )
    )
    code, checks = check(capsys, "--no-write")
    assert code == 0, "a warning is not a failure"
    assert checks["PGP key"]["status"] == "warn"
    assert "in 10 days" in checks["PGP key"]["detail"] or "in 9 days" in checks["PGP key"]["detail"]


def test_pgp_key_refused(
    live_home: Path, bad_keys: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    expired = bad_keys["expired"]
    (live_home / "carriers" / "colonial.asc").write_text(expired.public_key_file.read_text())
    profile = live_home / "carriers" / "colonial.toml"
    profile.write_text(
        re.sub(
            r'recipient_fingerprint = "\w+"',
            f'recipient_fingerprint = "{expired.fingerprint}"',
            profile.read_text(),
        )
    )
    code, checks = check(capsys, "--no-write")
    assert code == 1
    assert checks["PGP key"]["status"] == "fail"
    assert "[pgp-key-expired]" in checks["PGP key"]["detail"]
    assert not (live_home / "state" / "gnupg").exists(), "checking imports nothing"


def test_alerts_sends_a_test_alert(
    live_home: Path, sshd: Sshd, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, checks = check(capsys, "--no-write")
    assert code == 0 and smtp_server.messages == []
    code, checks = check(capsys, "--no-write", "--alerts")
    assert code == 0 and checks["alert email"]["status"] == "pass"
    assert len(smtp_server.messages) == 1
    assert "[edi] test: colonial" in smtp_server.messages[0]["Subject"]


def test_no_delivery_settings(edi_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, checks = check(capsys)
    assert code == 1
    assert checks["delivery settings"]["status"] == "fail"
    assert "[profile-no-delivery]" in checks["delivery settings"]["detail"]
    assert checks["PGP key"]["status"] == "fail"
    assert checks["alerts"]["status"] == "warn"
