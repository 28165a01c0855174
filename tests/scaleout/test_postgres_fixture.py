"""The PostgreSQL fixture itself: a real server, one empty database per test."""

from __future__ import annotations

import psycopg


def test_each_test_gets_its_own_empty_database(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert version is not None and int(version[0]) >= 150000
    assert tables == (0,)
