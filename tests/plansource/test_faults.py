"""Every sandbox fault switch, against the real server: retried where the error is transient,
otherwise a clear error naming endpoint / page / record id, and never a published snapshot."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edi.errors import PlanSourceApiError, SourceDataError
from edi.plansource.client import ClientSecret, PlanSourceClient, RetryPolicy
from edi.plansource.export import raw_records, read_export
from edi.plansource.pull import pull
from edi.plansource.sandbox import MALFORMED_DATE, Faults
from edi.workspace import PlanSourceSettings
from tests.support.plansource_server import FAST_RETRY, SAMPLE_EXPORT, RunningSandbox

Sandbox = Callable[..., RunningSandbox]
Export = Callable[..., Path]


def failed_pull(api: RunningSandbox, tmp_path: Path, **settings: Any) -> PlanSourceApiError:
    """The error of a pull that must fail, after checking that it left nothing behind."""
    out = tmp_path / "pulls" / "snap"
    with pytest.raises(PlanSourceApiError) as caught:
        api.pull(out, **settings)
    assert list(out.parent.iterdir()) == []
    return caught.value


def test_latency_with_bounded_concurrency(
    plansource_sandbox: Sandbox, plansource_export: Export, tmp_path: Path
) -> None:
    export = plansource_export(subscribers=60, dependents_per=0, coverages_per=0)
    api = plansource_sandbox(export, Faults(latency_ms=40))

    api.pull(tmp_path / "parallel", per_page=5, concurrency=3)  # 12 pages, 3 at a time
    assert api.stats.max_in_flight == 3

    api.stats.max_in_flight = 0
    api.pull(tmp_path / "sequential", per_page=5, concurrency=1)
    assert api.stats.max_in_flight == 1


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_is_retried(status: int, plansource_sandbox: Sandbox, tmp_path: Path) -> None:
    api = plansource_sandbox(
        SAMPLE_EXPORT, Faults(rate_limit_every=3, throttle_status=status, retry_after_s=0)
    )
    # One at a time, a throttled request's retry is never the next Nth request: deterministic.
    manifest = api.pull(tmp_path / "snap", per_page=20, concurrency=1)

    assert api.stats.statuses[status] > 0
    assert manifest.counts["coverages"] == len(list(raw_records(SAMPLE_EXPORT / "coverages.json")))


def test_retry_after_is_honoured(plansource_sandbox: Sandbox) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(rate_limit_every=2, retry_after_s=1))
    with PlanSourceClient(api.settings(), api.credentials, retry=FAST_RETRY) as client:
        client.fetch("/coverage/meta")  # request 1
        started = time.monotonic()
        client.fetch("/coverage/meta")  # request 2 is throttled; request 3 answers
        waited = time.monotonic() - started
    assert api.stats.statuses[429] == 1
    assert waited >= 1.0  # the server's wish, not the tiny test backoff


def test_throttled_for_ever_gives_up_after_the_attempts(
    plansource_sandbox: Sandbox, tmp_path: Path
) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(rate_limit_every=1, retry_after_s=0))
    error = failed_pull(api, tmp_path)
    assert error.code == "plansource-throttled"
    assert "GET /subscribers page 1: HTTP 429 (error_code=rate_limited" in error.message
    assert api.stats.api_requests == FAST_RETRY.attempts


def test_intermittent_500s_are_retried(plansource_sandbox: Sandbox, tmp_path: Path) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(error_every=4))
    # Concurrent requests share the every-4th counter, so one request may meet several 500s
    # in a row: enough attempts that giving up is practically impossible (0.25 ** 12).
    patient = RetryPolicy(attempts=12, backoff_initial_s=0.001, backoff_max_s=0.01)
    api.pull(tmp_path / "snap", per_page=10, concurrency=3, retry=patient)
    assert api.stats.statuses[500] > 0
    for kind in ("subscribers", "dependents", "coverages"):
        served = list(raw_records(SAMPLE_EXPORT / f"{kind}.json"))
        assert list(raw_records(tmp_path / "snap" / f"{kind}.json")) == served


def test_persistent_500s_fail_after_the_attempts(
    plansource_sandbox: Sandbox, tmp_path: Path
) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(error_every=1))
    error = failed_pull(api, tmp_path)
    assert error.code == "plansource-server-error"
    assert "GET /subscribers page 1: HTTP 500" in error.message
    assert "error_code=internal_error" in error.message
    assert api.stats.api_requests == FAST_RETRY.attempts


def test_a_200_with_status_failure_is_a_failure(
    plansource_sandbox: Sandbox, tmp_path: Path
) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(failure_page="coverages:2"))
    error = failed_pull(api, tmp_path, per_page=50)
    assert error.code == "plansource-failure"
    assert error.message.startswith("GET /coverages page 2: HTTP 200 with status 'failure'")
    assert "error_code=report_failed" in error.message


def test_a_page_that_is_not_json(plansource_sandbox: Sandbox, tmp_path: Path) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(not_json_page="dependents:2"))
    error = failed_pull(api, tmp_path, per_page=20)
    assert error.code == "plansource-not-json"
    assert error.message.startswith("GET /dependents page 2: HTTP 200")
    assert "text/html" in error.message


def test_a_short_page(plansource_sandbox: Sandbox, tmp_path: Path) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(short_page="subscribers:2"))
    error = failed_pull(api, tmp_path, per_page=20)
    assert error.code == "plansource-short-page"
    assert "GET /subscribers page 2: 19 records, but total 70 at per_page 20 promises 20" in (
        error.message
    )


def test_a_record_without_id(plansource_sandbox: Sandbox, tmp_path: Path) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(missing_id_page="coverages:3"))
    error = failed_pull(api, tmp_path, per_page=20)
    assert error.code == "plansource-record-without-id"
    assert error.message == "GET /coverages page 3: record #1 on the page has no usable id"
    assert "page=3" in error.details


def test_duplicate_ids_across_pages(plansource_sandbox: Sandbox, tmp_path: Path) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(duplicate_id_page="subscribers:3"))
    error = failed_pull(api, tmp_path, per_page=20)
    assert error.code == "plansource-duplicate-id"
    assert error.message == "GET /subscribers page 3: subscriber id=1001 was already on page 1"
    assert error.record_ids == ("1001",)


def test_malformed_dates_are_kept_and_named_by_record_id(
    plansource_sandbox: Sandbox, tmp_path: Path
) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(malformed_dates=True))
    snapshot = tmp_path / "snap"
    api.pull(snapshot, per_page=25)  # a pull copies; judging dates is the reader's job

    first = next(raw_records(snapshot / "subscribers.json"))
    assert first["birthdate"] == MALFORMED_DATE
    with pytest.raises(SourceDataError) as caught, read_export(snapshot, tmp_path) as data:
        list(data.groups())
    assert "subscriber id=1001" in caught.value.record_ids
    assert MALFORMED_DATE not in " ".join(caught.value.details)  # ids and fields, never values


def test_unreachable_host(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = PlanSourceSettings(
        base_url=f"http://127.0.0.1:{port}/admin/v2",
        token_url=f"http://127.0.0.1:{port}/oauth/v2/token",
        client_id="sandbox",
        timeout_s=2,
    )
    with pytest.raises(PlanSourceApiError) as caught:
        pull(
            settings, tmp_path / "snap", credentials=ClientSecret("sandbox", "x"), retry=FAST_RETRY
        )
    assert caught.value.code == "plansource-unreachable"
    assert f"cannot reach 127.0.0.1:{port} (ConnectError)" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_every_request_times_out(plansource_sandbox: Sandbox, tmp_path: Path) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(latency_ms=400))
    error = failed_pull(api, tmp_path, timeout_s=0.1)
    assert error.code == "plansource-timeout"
    assert error.message == "GET /subscribers page 1: no answer within 0.1 s"


def test_faults_can_be_switched_over_http(plansource_sandbox: Sandbox) -> None:
    import httpx

    api = plansource_sandbox(SAMPLE_EXPORT)
    answer = httpx.post(f"{api.root_url}/_sandbox/faults", json={"short_page": "coverages:1"})
    assert answer.json()["short_page"] == "coverages:1"
    assert api.faults.short_page == "coverages:1"
    refused = httpx.post(f"{api.root_url}/_sandbox/faults", json={"short_page": "nonsense"})
    assert refused.status_code == 400
    assert httpx.get(f"{api.root_url}/_sandbox/stats").json()["api_requests"] == 0
