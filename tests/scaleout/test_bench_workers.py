"""The workers benchmark at a tiny size, so it cannot rot (no timing is asserted)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import transmit
from bench.bench_workers import CARRIERS, run_bench
from edi.demo import decrypt_as_carrier
from tests.support.postgres import PostgresServer
from tests.support.workspace import assert_valid_834


@pytest.fixture
def scratch() -> Iterator[Path]:
    """Short: gpg-agent's socket path must fit in a unix socket address."""
    folder = Path(tempfile.mkdtemp(prefix="bw-"))
    yield folder
    for gnupg in folder.glob("template/carrier-side/*/gnupg"):
        transmit.stop_gpg_agent(gnupg)
    shutil.rmtree(folder, ignore_errors=True)


def test_the_workers_bench_runs_every_feed_once_per_trial(
    postgres_server: PostgresServer, scratch: Path, tmp_path: Path
) -> None:
    results = run_bench(
        workspaces=2,
        employees=20,
        worker_counts=[1, 2],
        scratch=scratch,
        store_url=postgres_server.url(),
        probes=1,
    )
    assert [t["workers"] for t in results["trials"]] == [1, 2]
    for t in results["trials"]:
        assert t["feeds"] == 2 * len(CARRIERS) == t["uploads"]
        assert t["outcomes"] == {"succeeded/delivered": t["feeds"]}
        assert len(t["peak_rss_mb_per_worker"]) == t["workers"]
        assert all(mb > 0 for mb in t["peak_rss_mb_per_worker"])
        assert t["worker_exit_status"] == [0] * t["workers"]
        assert set(t["queue_latency_batch_s"]) == {"p50", "p95", "max", "mean"}
        assert t["queue_latency_idle_s"]["max"] >= 0 and t["feeds_per_hour"] > 0
    assert results["ratio_2_vs_1_workers"] > 0
    for carrier in CARRIERS:
        (upload,) = (scratch / "sftp-root" / "employer-01" / carrier).glob("*.pgp")
        plain = tmp_path / f"{carrier}.834"
        gnupg = scratch / "template" / "carrier-side" / carrier / "gnupg"
        plain.write_bytes(decrypt_as_carrier(gnupg, upload))
        assert_valid_834(plain)
