"""The delivery log in PostgreSQL: append-only in the database (grants and triggers), tampering
by a superuser who bypasses the triggers caught by verify, and per-employer roles that cannot
read or verify another employer's log — on a real server, with real passwords."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

import transmit
from edi import store
from edi.delivery_config import delivery_log
from edi.errors import RunFailed
from edi.workspace import Workspace
from tests.scaleout.helpers import grant_employers
from tests.support.postgres import PostgresServer
from tests.support.workspace import edi

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
LOG_TABLES = ("edi_log_entries", "edi_log_checkpoints")
# Appended to, never changed, like the log.
HISTORY_TABLES = ("edi_baseline_history", "edi_reconciliations")


def employer_home(root: Path, name: str) -> Path:
    home = root / name
    (home / "carriers").mkdir(parents=True)
    (home / "edi.toml").write_text(f'name = "{name}"\n[store]\nurl_env = "STORE_{name.upper()}"\n')
    return home


def filled(home: Path, entries: int = 6) -> transmit.DeliveryLog:
    log = delivery_log(Workspace.open(home))
    for n in range(entries):
        log.append("delivery", now=NOW, carrier="colonial", outcome="delivered", isa13=str(n))
    log.checkpoint(now=NOW)
    return log


@pytest.fixture
def acme(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[transmit.DeliveryLog]:
    monkeypatch.setenv("STORE_ACME", pg_url)
    store.init_schema(pg_url)
    yield filled(employer_home(tmp_path, "acme"))


def owner(pg_url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(pg_url, autocommit=True)


def bypassing(pg_url: str, sql: str) -> None:
    """A superuser who turns the triggers off for the session and rewrites the log."""
    with owner(pg_url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(sql)


def test_roles_have_no_update_or_delete_on_the_log(acme: transmit.DeliveryLog, pg_url: str) -> None:
    with owner(pg_url) as conn:
        for role in ("edi_app", "edi_employer"):
            for table in (*LOG_TABLES, *HISTORY_TABLES):
                granted = {
                    privilege: conn.execute(
                        "SELECT has_table_privilege(%s, %s, %s)", (role, table, privilege)
                    ).fetchone()[0]  # type: ignore[index]
                    for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
                }
                assert granted == {
                    "SELECT": True,
                    "INSERT": True,
                    "UPDATE": False,
                    "DELETE": False,
                    "TRUNCATE": False,
                }, (role, table)
            assert conn.execute(
                "SELECT has_table_privilege(%s, 'edi_baseline_members', 'DELETE')", (role,)
            ).fetchone() == (True,)
            # Nobody but the owner maps roles to workspaces (edi store grant).
            assert conn.execute(
                "SELECT has_table_privilege(%s, 'edi_workspace_roles', 'INSERT')", (role,)
            ).fetchone() == (False,)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE edi_log_entries SET body = body || ' ' WHERE seq = 3",
        "DELETE FROM edi_log_entries WHERE seq = 6",
        "TRUNCATE edi_log_entries",
        "UPDATE edi_log_checkpoints SET signature = 'x' WHERE id = 2",
        "DELETE FROM edi_log_checkpoints",
        "TRUNCATE edi_log_checkpoints",
        "UPDATE edi_baseline_history SET reason = 'x'",
        "DELETE FROM edi_baseline_history",
        "TRUNCATE edi_reconciliations",
    ],
)
def test_the_database_refuses_to_change_the_log_even_for_its_owner(
    acme: transmit.DeliveryLog, pg_url: str, sql: str
) -> None:
    from edi import stores

    # A baseline reset is a history row (row triggers need a row to refuse).
    stores.baselines(Workspace.open(acme.signing_key_path.parents[2])).reset("colonial", "t", NOW)
    with owner(pg_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        conn.execute(sql)
    assert "append-only" in str(refused.value)
    report = acme.verify()
    assert report.ok and report.entries == 6


@pytest.mark.parametrize(
    ("sql", "found", "reaches_the_tail"),
    [
        (
            'UPDATE edi_log_entries SET body = replace(body, \'"isa13":"2"\', \'"isa13":"9"\')'
            " WHERE seq = 3",
            "entry 3 was altered",
            False,
        ),
        ("DELETE FROM edi_log_entries WHERE seq = 4", "entry 4 is missing", False),
        (
            "DELETE FROM edi_log_entries WHERE seq > 4; "
            "DELETE FROM edi_log_checkpoints WHERE entry_count > 4",
            "the log ends at entry 4 but its witness records 6",
            True,
        ),
        ("DELETE FROM edi_log_checkpoints WHERE id = 2", "does not follow the checkpoint", False),
        ("TRUNCATE edi_log_entries, edi_log_checkpoints", "missing while its witness", True),
    ],
    ids=["altered", "deleted", "tail-cut", "checkpoint-deleted", "truncated"],
)
def test_a_superuser_bypassing_the_triggers_is_caught_by_verify(
    acme: transmit.DeliveryLog,
    pg_url: str,
    sql: str,
    found: str,
    reaches_the_tail: bool,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bypassing(pg_url, sql)
    code, out, err = edi(capsys, "log", "verify", "--home", str(acme.signing_key_path.parents[2]))
    assert code == 1
    assert found in out + err
    if reaches_the_tail:  # no run signs over damage at the newest entry (as with SQLite)
        with pytest.raises(transmit.LogError):
            acme.append("attempt", now=NOW, carrier="colonial")


def test_one_employers_credentials_cannot_read_or_verify_anothers_log(
    tmp_path: Path,
    pg_url: str,
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("STORE_ACME", pg_url)
    monkeypatch.setenv("STORE_GLOBEX", pg_url)
    assert edi(capsys, "store", "init", "--store-url", pg_url)[0] == 0
    acme_home, globex_home = (employer_home(tmp_path, n) for n in ("acme", "globex"))
    filled(acme_home, 3)
    filled(globex_home, 4)
    urls = grant_employers(
        capsys,
        monkeypatch,
        postgres_server,
        pg_url,
        {"acme": "acme-Secret-1", "globex": "globex-Secret-2"},
    )
    # The password is checked: a wrong one does not get in.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(urls["acme"].replace("acme-Secret-1", "wrong"))
    with psycopg.connect(urls["acme"]) as conn:
        seen = conn.execute(
            "SELECT workspace, count(*) FROM edi_log_entries GROUP BY workspace"
        ).fetchall()
        assert seen == [("acme", 3)]
        assert conn.execute(
            "SELECT count(*) FROM edi_log_entries WHERE workspace = 'globex'"
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM edi_log_checkpoints").fetchone() == (3,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO edi_log_entries VALUES ('globex', 99, '{}', 'x', 'y')"
            )  # row-level security: not into another employer's log
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE edi_log_entries SET body = '{}' WHERE seq = 1")
    # Each employer's own credentials verify its own log, from its own workspace...
    for name, home in (("acme", acme_home), ("globex", globex_home)):
        monkeypatch.setenv(f"STORE_{name.upper()}", urls[name])
        code, out, err = edi(capsys, "log", "verify", "--home", str(home))
        assert code == 0, err
    # ... and acme's credentials on globex's workspace are refused, not shown an empty log.
    monkeypatch.setenv("STORE_GLOBEX", urls["acme"])
    code, out, err = edi(capsys, "log", "verify", "--home", str(globex_home))
    assert code == 1 and "may not read the delivery log of workspace 'globex'" in out + err
    code, out, err = edi(capsys, "log", "list", "--json", "--home", str(globex_home))
    assert code == 1 and "log-access-denied" in err
    assert "acme-Secret-1" not in out + err
    # Nor its control numbers or baselines: refused, not shown as none.
    from edi import stores

    globex = Workspace.open(globex_home)
    for read in (
        lambda: stores.control_numbers(globex).lookup("colonial", 1),
        lambda: stores.baselines(globex).show("colonial"),
        lambda: stores.baselines(globex).lookup("colonial"),
    ):
        with pytest.raises(RunFailed) as refused:
            read()
        assert refused.value.code == "store-access-denied"
        assert "of workspace 'globex'" in refused.value.message
    # An employer's role appends to its own log (a run with the employer's credentials).
    log = delivery_log(Workspace.open(acme_home))
    monkeypatch.setenv("STORE_ACME", urls["acme"])
    log.append("attempt", now=NOW, carrier="colonial")
    assert log.verify().ok and log.verify().entries == 4


def test_the_workers_role_reaches_every_workspace_but_cannot_change_a_log(
    tmp_path: Path, pg_url: str, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.init_schema(pg_url)
    with owner(pg_url) as conn:
        conn.execute("DROP ROLE IF EXISTS edi_worker_test")
        conn.execute("CREATE ROLE edi_worker_test LOGIN PASSWORD 'worker-pw'")
        conn.execute("GRANT edi_app TO edi_worker_test")
    database = pg_url.rsplit("/", 1)[1]
    worker_url = (
        f"postgresql://edi_worker_test:worker-pw@{postgres_server.host}:{postgres_server.port}/"
        f"{database}"
    )
    for name in ("acme", "globex"):
        monkeypatch.setenv(f"STORE_{name.upper()}", worker_url)
        home = employer_home(tmp_path, name)
        ws = Workspace.open(home)
        from edi import stores

        assert stores.control_numbers(ws).allocate("colonial", "fp", NOW).control_number == 1
        stores.baselines(ws).propose("colonial", "f", [])
        filled(home, 2)
        assert delivery_log(ws).verify().ok
    with psycopg.connect(worker_url) as conn:
        assert conn.execute("SELECT count(DISTINCT workspace) FROM edi_log_entries").fetchone() == (
            2,
        )
        for sql in (
            "UPDATE edi_log_entries SET body = '{}'",
            "DELETE FROM edi_log_checkpoints",
            "TRUNCATE edi_log_entries",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
                conn.execute(sql)
            assert "permission denied" in str(refused.value)  # the grant, before any trigger
            conn.rollback()
    with owner(pg_url) as conn:
        conn.execute("DROP OWNED BY edi_worker_test")
        conn.execute("DROP ROLE edi_worker_test")
