"""The client over an injected httpx transport (httpx's own MockTransport): the parts of the
protocol the sandbox does not vary, such as pages without a total and Retry-After dates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx

from edi.plansource.client import ClientSecret, PlanSourceClient, retry_after_seconds
from edi.workspace import PlanSourceSettings
from tests.support.plansource_server import FAST_RETRY

SETTINGS = PlanSourceSettings(
    base_url="https://api.example/admin/v2",
    token_url="https://api.example/oauth/v2/token",
    client_id="acme",
    per_page=2,
    concurrency=2,
)


def untotalled_api(records: int, seen: list[int]) -> httpx.MockTransport:
    """Pages without a total: the client must follow them until a short page."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/v2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        page = int(request.url.params["page"])
        seen.append(page)
        ids = range((page - 1) * 2 + 1, min(page * 2, records) + 1)
        body = {"status": "success", "errors": [], "data": [{"id": i} for i in ids]}
        return httpx.Response(200, content=json.dumps(body).encode())

    return httpx.MockTransport(handle)


def test_pages_without_a_total_are_followed_until_a_short_page() -> None:
    seen: list[int] = []
    transport = untotalled_api(5, seen)
    with PlanSourceClient(SETTINGS, ClientSecret("acme", "s"), transport=transport) as client:
        ids = [record["id"] for record in client.records("/subscribers")]
    assert ids == [1, 2, 3, 4, 5] and seen == [1, 2, 3]


def test_an_exact_multiple_without_a_total_stops_at_the_empty_page() -> None:
    seen: list[int] = []
    transport = untotalled_api(4, seen)
    with PlanSourceClient(
        SETTINGS, ClientSecret("acme", "s"), transport=transport, retry=FAST_RETRY
    ) as client:
        pages = list(client.pages("/subscribers"))
    assert [len(page.records) for page in pages] == [2, 2] and seen == [1, 2, 3]


def test_retry_after_as_seconds_or_an_http_date() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None
