"""`edi run` with quarantine on, end to end (real sshd, gpg, SMTP): the held families are in
the delivery log by id and code, and one alert names them; everyone else is delivered."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rules.fixtures import merged_export, prepare_profile, scenarios
from tests.support.servers import CarrierKey, SmtpServer, Sshd
from tests.support.workspace import assert_valid_834, edi, log_entries


def test_run_delivers_everyone_else_and_logs_and_alerts_the_held_once(
    live_home: Path,
    sshd: Sshd,
    carrier_key: CarrierKey,
    smtp_server: SmtpServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    failing = [s for s in scenarios("fail") if not s.profile and s.carrier == "colonial"]
    passing = [s for s in scenarios("pass") if not s.profile]
    source = merged_export(tmp_path / "merged", failing + passing)
    settings = live_home / "edi.toml"
    lines = settings.read_text().splitlines()
    settings.write_text(
        "\n".join(f'source = "{source}"' if line.startswith("source") else line for line in lines)
    )
    prepare_profile(live_home, "colonial", quarantine=True)
    code, _, err = edi(capsys, "run", "--carrier", "colonial", "--as-of", "2026-11-24")
    assert code == 0, err
    (delivered,) = sshd.inbox.iterdir()
    plain = tmp_path / "plain.834"
    plain.write_bytes(carrier_key.decrypt(delivered))
    assert_valid_834(plain)
    held_ids = sorted(sid for s in failing for sid in s.subscriber_ids())
    entry = next(e for e in log_entries(capsys, live_home) if e["event"] == "delivery")
    held = entry["held"]
    assert isinstance(held, list)
    assert sorted(h["subscriber_id"] for h in held) == held_ids
    by_id = {h["subscriber_id"]: h for h in held}
    for s in failing:
        (sid,) = s.subscriber_ids()
        assert by_id[sid]["codes"] == sorted(set(s.findings))
        assert set(by_id[sid]) == {"subscriber_id", "codes", "dependent_ids", "coverage_ids"}
    alerts = [m for m in smtp_server.messages if "members-held" in m["Subject"]]
    assert len(alerts) == 1
    body = alerts[0].get_payload()
    assert f"{len(held_ids)} subscriber(s) held" in body
    assert all(sid in body for sid in held_ids)
    assert "Member" not in body and "1980" not in body  # no names, no birth dates
