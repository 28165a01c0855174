"""Schedules, the scheduler, the missed-run watchdog and acknowledgments."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edi.acks import overdue_acks, parse_ack
from edi.delivery_config import delivery_log
from edi.errors import ConfigError
from edi.scheduler import build_scheduler, workspace_lock
from edi.schedules import load_schedule, load_schedules
from edi.watchdog import missed_runs
from edi.workspace import Workspace
from tests.support.servers import SmtpServer, Sshd
from tests.support.workspace import edi, log_entries

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def schedule_file(home: Path, name: str, text: str) -> Path:
    (home / "schedules").mkdir(exist_ok=True)
    path = home / "schedules" / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('carrier = "colonial"\ncron = "61 2 * * 1"\n', "cron"),
        ('carrier = "colonial"\ncron = "0 2 * * 1"\ntimezone = "Mars/Olympus"\n', "timezone"),
        (
            'carrier = "colonial"\ncron = "0 2 * * 1"\nexpected_ack_within = "soon"\n',
            "expected_ack_within",
        ),
        ('carrier = "colonial"\ncron = "0 2 * * 1"\ncolour = "blue"\n', "colour"),
    ],
)
def test_bad_schedule_files_name_file_and_key(edi_home: Path, text: str, key: str) -> None:
    path = schedule_file(edi_home, "bad", text)
    with pytest.raises(ConfigError) as raised:
        load_schedule(path)
    assert str(path) in raised.value.message and key in raised.value.message


def test_crontab_weekdays_mean_what_cron_means(edi_home: Path) -> None:
    """APScheduler 3 counts Monday as 0; `0 2 * * 1` must still be Mondays."""
    monday = load_schedule(
        schedule_file(
            edi_home,
            "c",
            'carrier = "colonial"\ncron = "0 2 * * 1"\ntimezone = "America/New_York"\n',
        )
    )
    fire = monday.next_run(datetime(2026, 11, 24, tzinfo=UTC))
    assert (
        fire is not None
        and fire.strftime("%A %H:%M") == "Monday 02:00"
        and fire.date().isoformat() == "2026-11-30"
    )
    sunday = load_schedule(
        schedule_file(edi_home, "s", 'carrier = "colonial"\ncron = "0 2 * * 0"\n')
    )
    assert sunday.next_run(datetime(2026, 11, 24, tzinfo=UTC)).strftime("%A") == "Sunday"  # type: ignore[union-attr]
    weekdays = load_schedule(
        schedule_file(edi_home, "w", 'carrier = "colonial"\ncron = "30 1 * * 1-5"\n')
    )
    fires, moment = [], datetime(2026, 11, 27, tzinfo=UTC)
    for _ in range(3):
        moment = weekdays.next_run(moment + timedelta(minutes=1))  # type: ignore[assignment]
        fires.append(moment.strftime("%a"))
    assert fires == ["Fri", "Mon", "Tue"]


def test_repository_schedules_are_valid() -> None:
    schedules = load_schedules(Workspace.open(Path(__file__).resolve().parents[2]))
    assert {s.carrier for s in schedules} == {"colonial", "unum", "allstate"}


def _scheduler(edi_home: Path, calls: list[str], cron: str = "0 2 * * *") -> object:
    from apscheduler.schedulers.background import BackgroundScheduler

    schedule_file(edi_home, "colonial", f'carrier = "colonial"\ncron = "{cron}"\n')
    return build_scheduler(
        Workspace.open(edi_home),
        run_job=lambda ws, s: calls.append(s.id),
        scheduler_cls=BackgroundScheduler,
        now=lambda: NOW,
    )


def test_jobs_fire_and_misfires_coalesce(edi_home: Path) -> None:
    calls: list[str] = []
    scheduler = _scheduler(edi_home, calls, cron="* * * * *")
    scheduler.remove_job("watchdog")  # type: ignore[attr-defined]
    scheduler.start(paused=True)  # type: ignore[attr-defined]
    job = scheduler.get_job("colonial")  # type: ignore[attr-defined]
    assert job.misfire_grace_time >= 3600 and job.coalesce and job.max_instances == 1
    # The check below takes up to ~11 s: start it early in a minute, so the next minute's own
    # run (a legitimate second call) cannot fall inside it.
    into_minute = datetime.now(UTC).second
    if into_minute > 45:
        time.sleep(61 - into_minute)
    job.modify(next_run_time=datetime.now(UTC) - timedelta(minutes=5))  # five missed minutes
    scheduler.resume()  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        scheduler.shutdown(wait=True)  # type: ignore[attr-defined]
    assert calls == ["colonial"], "five missed runs coalesce into one"


def test_a_failing_run_does_not_stop_the_scheduler(edi_home: Path) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from edi.errors import DeliveryFailed
    from edi.scheduler import run_scheduled

    schedule_file(edi_home, "colonial", 'carrier = "colonial"\ncron = "0 2 * * *"\n')
    (schedule,) = load_schedules(Workspace.open(edi_home))

    def failing(ws: Workspace, s: object) -> None:
        raise DeliveryFailed("connection-failed", "down")

    run_scheduled(failing, Workspace.open(edi_home), schedule)  # returns, does not raise
    assert BackgroundScheduler  # the scheduler class the tests drive


def test_the_lock_refuses_a_second_scheduler(edi_home: Path) -> None:
    lock = workspace_lock(Workspace.open(edi_home))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edi", "--home", str(edi_home), "scheduler", "run"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and "scheduler-running" in done.stderr
    finally:
        lock.release()


def test_watchdog_alerts_once_for_a_missed_run(edi_home: Path, smtp_server: SmtpServer) -> None:
    (edi_home / "edi.toml").write_text(
        f'[alerts]\nemail_to = ["ops@test.invalid"]\n[smtp]\nhost = "127.0.0.1"\n'
        f"port = {smtp_server.port}\n"
    )
    schedule_file(
        edi_home, "colonial", 'carrier = "colonial"\ncron = "0 2 * * *"\nrun_deadline = "2h"\n'
    )
    workspace = Workspace.open(edi_home)
    schedules = load_schedules(workspace)
    first = missed_runs(workspace, schedules, NOW)
    assert first == [
        {
            "schedule": "colonial",
            "carrier": "colonial",
            "due": "2026-11-24T02:00:00+00:00",
            "alerted": "now",
        }
    ]
    assert missed_runs(workspace, schedules, NOW + timedelta(minutes=15))[0]["alerted"] == "before"
    assert len(smtp_server.messages) == 1 and "run-missed" in smtp_server.messages[0]["Subject"]
    delivery_log(workspace).append(
        "delivery", now=NOW + timedelta(hours=1), carrier="colonial", outcome="delivered"
    )
    assert missed_runs(workspace, schedules, NOW + timedelta(hours=2)) == []


NINE_NINE_NINE = (
    "ISA*00*          *00*          *ZZ*COLONIALLIFE   *ZZ*ACMEWIDGETS    *261124*0300*^"
    "*00501*000000101*0*T*:~\n"
    "GS*FA*COLONIAL*ACMEWIDGETS*20261124*0300*101*X*005010X231A1~\nST*999*0001*005010X231A1~\n"
    "AK1*BE*{gs06}*005010X220A1~\nAK2*834*0001*005010X220A1~\n{ik}IK5*{verdict}~\n"
    "AK9*{verdict}*1*1*{accepted}~\nSE*{se}*0001~\nGE*1*101~\nIEA*1*000000101~\n"
)


def nine_nine_nine(gs06: str, verdict: str) -> str:
    errors = "IK3*INS*12**8~\nIK4*2*1069*7*99~\n" if verdict == "R" else ""
    return NINE_NINE_NINE.format(
        gs06=gs06,
        verdict=verdict,
        accepted="0" if verdict == "R" else "1",
        ik=errors,
        se=6 + (2 if errors else 0),
    )


def ta1(isa13: str, verdict: str, note: str) -> str:
    return (
        "ISA*00*          *00*          *ZZ*COLONIALLIFE   *ZZ*ACMEWIDGETS    *261124*0300*^"
        "*00501*000000102*0*T*:~\n"
        f"TA1*{isa13}*261124*0200*{verdict}*{note}~\nIEA*0*000000102~\n"
    )


def test_parse_acks() -> None:
    (accepted,) = parse_ack(nine_nine_nine("7", "A"))
    assert (accepted.kind, accepted.status, accepted.gs06, accepted.st02s) == (
        "999",
        "accepted",
        "7",
        ("0001",),
    )
    (rejected,) = parse_ack(nine_nine_nine("7", "R"))
    assert rejected.status == "rejected" and "IK4:99" in rejected.codes
    (interchange,) = parse_ack(ta1("000000007", "R", "006"))
    assert (interchange.kind, interchange.isa13, interchange.status, interchange.codes) == (
        "TA1",
        "000000007",
        "rejected",
        ("006",),
    )
    assert parse_ack("not x12") == []


def test_acks_fetched_matched_logged_alerted_and_unmatched_kept(
    live_home: Path,
    sshd: Sshd,
    smtp_server: SmtpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outbound = sshd.facts.root / "outbound"
    outbound.mkdir()
    profile = live_home / "carriers" / "colonial.toml"
    profile.write_text(
        profile.read_text() + f'\n[acks]\nremote_dir = "{outbound}"\npattern = "*.x12"\n'
        "delete_after_fetch = true\n"
    )
    assert edi(capsys, "run", "-c", "colonial", "--as-of", "2026-11-24")[0] == 0
    delivered = next(e for e in log_entries(capsys, live_home) if e["event"] == "delivery")
    (outbound / "a-999.x12").write_text(nine_nine_nine(str(delivered["gs06"]), "A"))
    (outbound / "b-ta1.x12").write_text(ta1(str(delivered["isa13"]), "R", "006"))
    (outbound / "c-stranger.x12").write_text(nine_nine_nine("424242", "A"))
    code, out, _ = edi(capsys, "acks", "fetch", "-c", "colonial", "--json")
    result = json.loads(out)["colonial"]
    assert code == 0 and result["unmatched"] == ["c-stranger.x12"]
    assert sorted((m["kind"], m["status"]) for m in result["matched"]) == [
        ("999", "accepted"),
        ("TA1", "rejected"),
    ]
    assert list(outbound.iterdir()) == [], "fetched acks are removed when the profile says so"
    assert (live_home / "state" / "acks" / "unmatched" / "c-stranger.x12").exists()
    acks = [e for e in log_entries(capsys, live_home) if e["event"] == "ack"]
    assert {a["ack_status"] for a in acks} == {"accepted", "rejected"}
    assert all(a["delivery_entry"] == delivered["seq"] for a in acks)
    assert any("ack-rejected" in m["Subject"] for m in smtp_server.messages)
    code, out, _ = edi(capsys, "status", "--json")
    assert code == 1 and "ack-rejected" in json.loads(out)[1]["problems"]


def test_overdue_ack_alerts_once(
    live_home: Path,
    sshd: Sshd,
    smtp_server: SmtpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert edi(capsys, "run", "-c", "colonial", "--as-of", "2026-11-24")[0] == 0
    workspace = Workspace.open(live_home)
    later = datetime.now(UTC) + timedelta(hours=49)
    assert len(overdue_acks(workspace, "colonial", timedelta(hours=48), later)) == 1
    assert (
        overdue_acks(workspace, "colonial", timedelta(hours=48), later + timedelta(hours=1)) == []
    )
    assert sum("ack-overdue" in m["Subject"] for m in smtp_server.messages) == 1
    code, out, _ = edi(capsys, "status", "--json")
    assert code == 1 and json.loads(out)[1]["problems"] == ["ack-overdue"]


@pytest.mark.sqlite_only  # the workspace's own scheduler; the shared one: tests/scaleout
def test_sigterm_stops_the_scheduler_cleanly_and_frees_the_lock(edi_home: Path) -> None:
    import signal

    schedule_file(edi_home, "colonial", 'carrier = "colonial"\ncron = "0 2 * * *"\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "edi", "--home", str(edi_home), "scheduler", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock_file = edi_home / "state" / "scheduler.lock"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not lock_file.exists():
        time.sleep(0.05)
    time.sleep(1.0)  # let it register jobs and run the first watchdog pass
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    workspace_lock(Workspace.open(edi_home)).release()  # the lock was given back
