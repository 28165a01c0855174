"""Change files through `edi run` against a real sshd: the baseline moves only after a
successful delivery, nothing is sent twice, and the guard stops a mass termination."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.servers import CarrierKey, SmtpServer, Sshd
from tests.support.workspace import edi, log_entries

AS_OF = ["--as-of", "2026-11-24"]


@pytest.fixture
def changes_home(live_home: Path, tmp_path: Path) -> Path:
    """The live workspace sending change files, over a small export the test can edit."""
    profile = live_home / "carriers" / "colonial.toml"
    profile.write_text(
        profile.read_text() + '\n[changes]\nfile_type = "changes"\nmax_disappearances = 0\n'
    )
    return live_home


def export(tmp_path: Path, employees: list[int]) -> Path:
    from tests.support.workspace import ExportBuilder

    builder = ExportBuilder(tmp_path / "source")
    for sid in employees:
        builder.subscriber(sid)
        builder.coverage(sid * 10, sid, "colonial_accident_1")
    return builder.write()


def run(capsys: pytest.CaptureFixture[str], source: Path, *extra: str) -> tuple[int, str, str]:
    return edi(capsys, "run", "-c", "colonial", "--source", str(source), *AS_OF, *extra)


def test_failed_delivery_keeps_the_baseline_and_the_next_run_resends(
    changes_home: Path,
    sshd: Sshd,
    carrier_key: CarrierKey,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(capsys, export(tmp_path, [1, 2]))[0] == 0
    source = export(tmp_path, [1, 2, 3])
    sshd.server.stop()
    code, _, err = run(capsys, source)
    assert code == 1 and "connection-failed" in err
    shown = json.loads(edi(capsys, "baseline", "show", "-c", "colonial")[1])
    assert shown["subscribers"] == 2, "a failed delivery leaves the baseline where it was"
    sshd.restart()
    code, out, _ = run(capsys, source)
    assert code == 0
    plain = carrier_key.decrypt(Path(out.strip())).decode()
    assert plain.count("INS*") == 1 and "REF*0F*E3~" in plain
    assert json.loads(edi(capsys, "baseline", "show", "-c", "colonial")[1])["subscribers"] == 3


def test_second_run_with_the_same_data_sends_no_change_file(
    changes_home: Path, sshd: Sshd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = export(tmp_path, [1, 2])
    assert run(capsys, source)[0] == 0
    code, out, err = run(capsys, source)
    assert code == 0 and out == "" and "nothing-to-send" in err
    assert len(list(sshd.inbox.iterdir())) == 1
    assert log_entries(capsys, changes_home)[-1]["event"] == "nothing-to-send"


def test_guard_stops_logs_and_alerts_then_a_reason_lets_it_through(
    changes_home: Path,
    sshd: Sshd,
    smtp_server: SmtpServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(capsys, export(tmp_path, [1, 2, 3]))[0] == 0
    source = export(tmp_path, [1, 2])
    (tmp_path / "source" / "subscribers.json").write_text(
        (tmp_path / "source" / "subscribers.json").read_text()
    )
    code, _, err = run(capsys, source)
    assert code == 1 and "mass-termination-guard" in err and "subscriber id=3" in err
    assert len(list(sshd.inbox.iterdir())) == 1
    assert "mass-termination-guard" in smtp_server.messages[-1]["Subject"]
    assert run(capsys, source, "--allow-mass-termination")[0] == 2
    code, _, _ = run(
        capsys, source, "--allow-mass-termination", "--reason", "employee 3 left, confirmed"
    )
    assert code == 0 and len(list(sshd.inbox.iterdir())) == 2
    allowed = [
        e for e in log_entries(capsys, changes_home) if e["event"] == "mass-termination-allowed"
    ]
    assert allowed and allowed[0]["reason"] == "employee 3 left, confirmed"


def test_diff_preview_and_baseline_reset(
    changes_home: Path, sshd: Sshd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, export(tmp_path, [1, 2]))[0] == 0
    source = export(tmp_path, [1, 2, 4])
    code, out, _ = edi(capsys, "diff", "-c", "colonial", "--source", str(source), *AS_OF, "--json")
    preview = json.loads(out)
    assert (
        code == 0
        and preview["additions"] == 1
        and preview["members"][0]["member"] == "subscriber id=4"
    )
    assert "name" not in preview["members"][0]
    page = tmp_path / "diff.html"
    code, _, _ = edi(
        capsys, "diff", "-c", "colonial", "--source", str(source), *AS_OF, "--html", str(page)
    )
    assert (
        code == 0
        and "subscriber id=4" in page.read_text()
        and "MEMBER4" not in page.read_text().upper()
    )
    code, out, _ = edi(
        capsys, "diff", "-c", "colonial", "--source", str(source), *AS_OF, "--json", "--show-names"
    )
    assert json.loads(out)["members"][0]["name"] == "Member4, Test"
    assert (
        edi(capsys, "baseline", "reset", "-c", "colonial", "--reason", "carrier reloaded")[0] == 0
    )
    assert json.loads(edi(capsys, "baseline", "show", "-c", "colonial")[1])["members"] == 0


def with_changes_table(home: Path, table: str) -> None:
    profile = home / "carriers" / "colonial.toml"
    profile.write_text(profile.read_text() + "\n[changes]\n" + table)


def bgn08_and_ins03(carrier_key: CarrierKey, delivered: Path) -> tuple[str, set[str]]:
    segments = [s.split("*") for s in carrier_key.decrypt(delivered).decode().split("~\n") if s]
    bgn = next(s for s in segments if s[0] == "BGN")
    return bgn[8], {s[3] for s in segments if s[0] == "INS"}


def test_send_empty_sends_the_audit_snapshot_when_nothing_changed(
    live_home: Path,
    sshd: Sshd,
    carrier_key: CarrierKey,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with_changes_table(live_home, 'file_type = "changes"\nsend_empty = true\n')
    source = export(tmp_path, [1, 2])
    assert run(capsys, source)[0] == 0
    code, out, _ = run(capsys, source)
    assert code == 0
    assert bgn08_and_ins03(carrier_key, Path(out.strip())) == ("4", {"030"})


def test_audit_every_month_after_the_first_file(
    live_home: Path,
    sshd: Sshd,
    carrier_key: CarrierKey,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with_changes_table(live_home, 'file_type = "changes"\naudit_every = "monthly"\n')
    source = export(tmp_path, [1, 2])
    code, out, _ = run(capsys, source)
    assert code == 0 and bgn08_and_ins03(carrier_key, Path(out.strip())) == ("2", {"021"})
    code, out, _ = run(capsys, source)
    assert code == 0 and bgn08_and_ins03(carrier_key, Path(out.strip())) == ("4", {"030"})
    code, out, err = run(capsys, source)
    assert code == 0 and out == "" and "nothing-to-send" in err
