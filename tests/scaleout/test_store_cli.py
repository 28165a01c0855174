"""`edi store init`, workspace names, `edi enqueue` and `edi jobs` against a real PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest

from tests.scaleout.helpers import add_store
from tests.support.postgres import PostgresServer
from tests.support.servers import use_postgres_store
from tests.support.workspace import edi


@pytest.fixture
def store_home(edi_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    (edi_home / "edi.toml").write_text("")
    add_store(edi_home, "acme")
    monkeypatch.setenv("EDI_STORE_URL", pg_url)
    return edi_home


def test_store_init_creates_both_schemas_then_is_a_no_op(
    capsys: pytest.CaptureFixture[str], store_home: Path, pg_url: str
) -> None:
    code, out, _ = edi(capsys, "store", "init")
    assert code == 0 and "created procrastinate, created edi_runs" in out
    with psycopg.connect(pg_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables").fetchall()}
    assert {"procrastinate_jobs", "procrastinate_events", "edi_runs"} <= tables
    code, out, _ = edi(capsys, "store", "init")
    assert code == 0 and "already up to date" in out


def test_store_init_migrates_procrastinate_to_its_newer_scripts(
    capsys: pytest.CaptureFixture[str],
    store_home: Path,
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store made by an older procrastinate gets the newer migration scripts, in order, once."""
    import shutil

    from procrastinate.schema import SchemaManager

    assert edi(capsys, "store", "init")[0] == 0
    shipped = Path(SchemaManager.get_migrations_path())
    newer = tmp_path / "migrations"
    shutil.copytree(shipped, newer)
    (newer / "99.00.00_01_pre_test.sql").write_text("CREATE TABLE edi_test_pre (n int);")
    (newer / "99.00.00_50_post_test.sql").write_text("INSERT INTO edi_test_pre VALUES (1);")
    monkeypatch.setattr(SchemaManager, "get_migrations_path", staticmethod(lambda: str(newer)))
    code, out, _ = edi(capsys, "store", "init")
    assert code == 0, out
    assert out.strip().endswith(
        "applied procrastinate migration 99.00.00_01_pre_test, "
        "applied procrastinate migration 99.00.00_50_post_test"
    )
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT n FROM edi_test_pre").fetchall() == [(1,)]
        assert conn.execute(
            "SELECT version FROM edi_schema_versions WHERE component = 'procrastinate'"
        ).fetchone() == ("99.00.00_50_post_test.sql",)
    code, out, _ = edi(capsys, "store", "init")
    assert code == 0 and "already up to date" in out


def test_store_needs_postgresql_15(pg_url: str) -> None:
    from edi import store
    from edi.errors import ConfigError

    with store.connect(pg_url) as conn:
        store.require_server_version(store.server_version(conn))  # the test server: 15+
    with pytest.raises(ConfigError) as old:
        store.require_server_version(140011)
    assert old.value.code == "store-server-too-old" and "version 14" in old.value.message


def test_the_store_password_is_never_printed(
    capsys: pytest.CaptureFixture[str],
    edi_home: Path,
    postgres_server: PostgresServer,
    pg_url: str,
) -> None:
    database = pg_url.rsplit("/", 1)[1]
    url = postgres_server.url(database, password="s3cret-pw")  # trust auth ignores it
    code, out, err = edi(capsys, "store", "init", "--store-url", url)
    assert code == 0 and "postgres:***@" in out
    assert "s3cret-pw" not in out + err
    bad = postgres_server.url("no_such_database", password="s3cret-pw")
    code, out, err = edi(capsys, "store", "init", "--store-url", bad)
    assert code == 1 and "store-unreachable" in err and "postgres:***@" in err
    assert "s3cret-pw" not in out + err


def test_a_workspace_with_a_store_needs_a_name(
    capsys: pytest.CaptureFixture[str], edi_home: Path
) -> None:
    (edi_home / "edi.toml").write_text("[store]\n")
    code, _, err = edi(capsys, "enqueue", "--carrier", "colonial")
    assert code == 2 and "needs a name" in err
    (edi_home / "edi.toml").write_text(
        'name = "acme"\n[store]\nurl = "postgresql://u:pw@127.0.0.1/db"\n'
    )
    code, _, err = edi(capsys, "enqueue", "--carrier", "colonial")
    assert code == 2 and "must not carry a password" in err and "pw@" not in err


def test_enqueue_without_a_store_is_a_config_error(
    capsys: pytest.CaptureFixture[str], edi_home: Path
) -> None:
    code, _, err = edi(capsys, "enqueue", "--carrier", "colonial")
    assert code == 2 and "store-not-configured" in err


def test_enqueue_before_store_init_says_so(
    capsys: pytest.CaptureFixture[str], store_home: Path
) -> None:
    code, _, err = edi(capsys, "enqueue", "--carrier", "colonial")
    assert code == 2 and "store-not-initialized" in err


def test_a_duplicate_enqueue_is_a_no_op_and_jobs_list_shows_the_one_job(
    capsys: pytest.CaptureFixture[str], store_home: Path
) -> None:
    assert edi(capsys, "store", "init")[0] == 0
    code, out, _ = edi(capsys, "enqueue", "--carrier", "colonial", "--as-of", "2026-11-24")
    assert code == 0
    job_id = int(out.strip())
    code, out, _ = edi(capsys, "enqueue", "--carrier", "colonial")
    assert code == 0 and out.startswith(f"already queued as job {job_id}")
    code, out, _ = edi(capsys, "enqueue", "--carrier", "unum")
    assert code == 0 and int(out.strip()) != job_id
    code, out, _ = edi(capsys, "jobs", "list", "--json")
    rows = json.loads(out)
    first = rows[0]
    assert (first["id"], first["status"], first["workspace"], first["carrier"]) == (
        job_id,
        "queued",
        "acme",
        "colonial",
    )
    assert len(rows) == 2 and rows[0]["queued_at"] and rows[0]["attempts"] == 0
    code, out, _ = edi(capsys, "jobs", "list")
    assert code == 0 and f"{job_id}\tqueued\trun\tacme/colonial\t0\t" in out  # a pipe: tabs


def test_enqueue_refuses_an_unknown_carrier(
    capsys: pytest.CaptureFixture[str], store_home: Path
) -> None:
    assert edi(capsys, "store", "init")[0] == 0
    code, _, _ = edi(capsys, "enqueue", "--carrier", "nosuch")
    assert code == 2
    code, out, _ = edi(capsys, "jobs", "list", "--json")
    assert json.loads(out) == []


def test_retry_refuses_queued_and_unknown_jobs(
    capsys: pytest.CaptureFixture[str], store_home: Path
) -> None:
    assert edi(capsys, "store", "init")[0] == 0
    job_id = edi(capsys, "enqueue", "--carrier", "colonial")[1].strip()
    code, _, err = edi(capsys, "jobs", "retry", job_id)
    assert code == 2 and "job-not-retryable" in err
    code, _, err = edi(capsys, "jobs", "retry", "999999")
    assert code == 2 and "job-not-found" in err


def test_dry_run_with_a_store_reserves_nothing_there(
    capsys: pytest.CaptureFixture[str],
    live_home: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if "[store]" not in (live_home / "edi.toml").read_text():
        use_postgres_store(live_home, pg_url, monkeypatch)
    code, out, err = edi(
        capsys, "run", "--carrier", "colonial", "--dry-run", "--as-of", "2026-11-24"
    )
    assert code == 0, err
    assert out.strip().endswith(".834.pgp") and "ISA13 000000001 would be used" in err
    with psycopg.connect(os.environ["EDI_STORE_URL"]) as conn:
        (numbers,) = conn.execute("SELECT count(*) FROM edi_control_numbers").fetchone() or (0,)
        (entries,) = conn.execute("SELECT count(*) FROM edi_log_entries").fetchone() or (0,)
    assert (numbers, entries) == (0, 0)
    assert not (live_home / "state" / "control.sqlite").exists()
