"""The PlanSource Admin API v2 over httpx: OAuth2 client credentials, envelopes, pages, retries.

    client = PlanSourceClient(settings, credentials_from_settings(settings))
    for page in client.pages("/subscribers"):   # ordered, fetched `concurrency` at a time
        ...

Errors (every one a `PlanSourceApiError`, exit 1). Messages name the request ("GET /coverages
page 3"), the HTTP status and PlanSource's error_code/message; never record contents:

    PlanSourceApiError              the API refused, failed, or answered something unusable
    │   plansource-auth-failed      the token endpoint refused the client id / secret / assertion
    │   plansource-unauthorized     a 401 again after one fresh token
    │   plansource-http-error       any other 4xx (never retried)
    │   plansource-failure          a response whose envelope says "status": "failure" (even a 200)
    │   plansource-not-json         a body that is not a JSON envelope
    │   plansource-short-page …     a page with fewer (or more) records than the total promised
    │   plansource-total-changed    the total moved between pages: the data changed mid-pull
    └── PlanSourceTransientError    429/503 (Retry-After honoured), other 5xx, timeouts and
            plansource-throttled    connection errors: retried by the `RetryPolicy`, raised
            plansource-server-error once its attempts run out
            plansource-timeout
            plansource-unreachable

The retry policy decides *when* (tenacity); the error class decides *whether*.

Pagination: `page` and `per_page`. The first page tells the total (`total`, `total_count` or
`meta.total`); the remaining pages are then fetched concurrently and handed back in page order,
at most `2 × concurrency` pages held at once. Without a total the pages are followed one by one
until a short page, an empty page, or an explicit `"next": null`.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential_jitter,
)

from edi.errors import ConfigError, PlanSourceApiError
from edi.workspace import PlanSourceSettings

SCOPE = "admin_api_v2"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
USER_AGENT = "edi-834 (PlanSource client)"
MESSAGE_LIMIT = 160

Params = Mapping[str, str | int]
Record = dict[str, Any]


class PlanSourceTransientError(PlanSourceApiError):
    """A failure worth another attempt; `retry_after` is the server's own wish, in seconds."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(code, message, **kw)
        self.retry_after = retry_after


# --- credentials ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientSecret:
    client_id: str
    secret: str = field(repr=False)

    def form(self, token_url: str) -> dict[str, str]:
        return {"client_id": self.client_id, "client_secret": self.secret}


@dataclass(frozen=True)
class JwtAssertion:
    """RS256 client assertion (RFC 7523): iss = sub = client id, aud = the token URL."""

    client_id: str
    private_key_pem: bytes = field(repr=False)
    lifetime_s: int = 300

    def form(self, token_url: str) -> dict[str, str]:
        issued = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "iat": issued,
            "exp": issued + self.lifetime_s,
            "jti": uuid.uuid4().hex,
        }
        assertion = jwt.encode(claims, self.private_key_pem, algorithm="RS256")
        return {
            "client_id": self.client_id,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion,
        }


Credentials = ClientSecret | JwtAssertion


def credentials_from_settings(
    settings: PlanSourceSettings, environ: Mapping[str, str] | None = None
) -> Credentials:
    """The private key file when one is configured, else the secret from `client_secret_env`."""
    env = os.environ if environ is None else environ
    if not settings.client_id:
        raise ConfigError(
            "plansource-client-id-missing",
            "[plansource] client_id is not set",
            hint="Set client_id in the [plansource] table of edi.toml.",
        )
    if settings.private_key_file:
        key_file = Path(settings.private_key_file)
        try:
            return JwtAssertion(settings.client_id, key_file.read_bytes())
        except OSError:
            raise ConfigError(
                "plansource-key-unreadable",
                f"[plansource] private_key_file {key_file} cannot be read",
                hint="Point private_key_file at the PEM private key registered with PlanSource.",
            ) from None
    name = settings.client_secret_env
    secret = env.get(name, "") if name else ""
    if not secret:
        raise ConfigError(
            "plansource-secret-missing",
            f"the environment variable {name or '(client_secret_env)'} holding the PlanSource "
            "client secret is not set",
            hint="export it, or set private_key_file in [plansource] for a JWT assertion.",
        )
    return ClientSecret(settings.client_id, secret)


# --- retry policy ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again. Tests shrink the waits; production keeps the defaults."""

    attempts: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0

    def retrying(self, cancelled: threading.Event) -> Retrying:
        backoff = wait_exponential_jitter(
            multiplier=self.backoff_initial_s, max=self.backoff_max_s, jitter=self.backoff_initial_s
        )

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, PlanSourceTransientError) and error.retry_after is not None:
                return min(error.retry_after, self.retry_after_max_s)
            return float(backoff(state))

        def sleep(seconds: float) -> None:
            # Sleeping on the event lets close() cut a backoff short.
            cancelled.wait(seconds)

        return Retrying(
            retry=retry_if_exception_type(PlanSourceTransientError),
            stop=stop_after_attempt(self.attempts) | stop_when_event_set(cancelled),
            wait=wait,
            sleep=sleep,
            reraise=True,
        )


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds (fractions tolerated) or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# --- responses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What an error message may say about a request: method, API path, page."""

    method: str
    path: str
    page: int | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}" + (f" page {self.page}" if self.page else "")

    def facts(self, status: int | None = None) -> list[str]:
        facts = [f"endpoint={self.path}"]
        if self.page:
            facts.append(f"page={self.page}")
        if status is not None:
            facts.append(f"http_status={status}")
        return facts


@dataclass(frozen=True)
class Envelope:
    """A successful response: its parsed body, `data`, and the bytes as sent."""

    body: dict[str, Any]
    raw: bytes

    @property
    def data(self) -> Any:
        return self.body.get("data")


@dataclass(frozen=True)
class Page:
    """One page: its records, what it says about the others, and the bytes as sent."""

    endpoint: str
    number: int
    records: list[Record]
    total: int | None
    per_page: int | None
    has_next: bool | None
    raw: bytes


def _plansource_reason(body: Any) -> str:
    """PlanSource's error_code and (shortened) message, from either error shape it sends."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors:
        errors = errors[0]
    if not isinstance(errors, dict):
        return ""
    parts = []
    if errors.get("error_code"):
        parts.append(f"error_code={errors['error_code']}")
    if errors.get("message"):
        parts.append(f"message={str(errors['message'])[:MESSAGE_LIMIT]}")
    return "; ".join(parts)


def _json_body(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _status_error(response: httpx.Response, request: Request) -> PlanSourceApiError:
    status = response.status_code
    reason = _plansource_reason(_json_body(response))
    message = f"{request}: HTTP {status}" + (f" ({reason})" if reason else "")
    facts = request.facts(status)
    if status in (429, 503):
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        return PlanSourceTransientError(
            "plansource-throttled", message, retry_after=wait, details=facts
        )
    if status >= 500:
        return PlanSourceTransientError("plansource-server-error", message, details=facts)
    return PlanSourceApiError(
        "plansource-http-error",
        message,
        hint="PlanSource refused the request; check the base_url and the API user's access.",
        details=facts,
    )


def _read_envelope(response: httpx.Response, request: Request) -> Envelope:
    body = _json_body(response)
    if not isinstance(body, dict) or "status" not in body:
        raise PlanSourceApiError(
            "plansource-not-json",
            f"{request}: HTTP {response.status_code} but the body is not a PlanSource JSON "
            f"envelope (content-type {response.headers.get('content-type', 'none')})",
            hint="A proxy or maintenance page may be answering; try again later.",
            details=request.facts(response.status_code),
        )
    if body["status"] != "success":
        reason = _plansource_reason(body)
        raise PlanSourceApiError(
            "plansource-failure",
            f"{request}: HTTP {response.status_code} with status {body['status']!r}"
            + (f" ({reason})" if reason else ""),
            hint="PlanSource reported a failure; nothing from this pull was kept.",
            details=request.facts(response.status_code),
        )
    return Envelope(body, response.content)


def _pagination(body: dict[str, Any]) -> tuple[int | None, int | None, bool | None]:
    """(total, per_page echoed, has next) from the top level or a `meta`/`links` object."""
    meta = body.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    links = body.get("links")
    links = links if isinstance(links, dict) else {}

    def number(*keys: str) -> int | None:
        for source in (body, meta):
            for key in keys:
                value = source.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
        return None

    has_next: bool | None = None
    for source in (body, links, meta):
        if "next" in source:
            has_next = bool(source["next"])
            break
    return number("total", "total_count", "total_entries"), number("per_page"), has_next


# --- tokens ---------------------------------------------------------------------------------


class _TokenSource:
    """One bearer token shared by all threads; refreshed before it expires and on a 401."""

    def __init__(
        self,
        fetch: Callable[[], tuple[str, float]],
        clock: Callable[[], float],
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.issued = 0

    def current(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._renew()
            assert self._token is not None
            return self._token

    def refresh(self, stale: str) -> str:
        """A fresh token, unless another thread already replaced `stale`."""
        with self._lock:
            if self._token in (None, stale):
                self._renew()
            assert self._token is not None
            return self._token

    def _renew(self) -> None:
        token, lifetime = self._fetch()
        # Renew a little early (a tenth of the lifetime, at most a minute) so a token never
        # expires while a request is on the wire.
        self._token = token
        self._refresh_at = self._clock() + lifetime - min(60.0, lifetime / 10)
        self.issued += 1


# --- the client -----------------------------------------------------------------------------


class PlanSourceClient:
    """A small typed API over an httpx transport (pass `transport` to replace the network)."""

    def __init__(
        self,
        settings: PlanSourceSettings,
        credentials: Credentials,
        *,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self._credentials = credentials
        self._retry = retry or RetryPolicy()
        self._cancelled = threading.Event()
        connections = settings.concurrency + 1
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_s),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        )
        self._tokens = _TokenSource(self._token_request, clock)
        # The pool's size is the concurrency bound: at most that many API requests in flight.
        self._pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="plansource")

    # lifecycle

    def close(self) -> None:
        self._cancelled.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    def __enter__(self) -> PlanSourceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def tokens_issued(self) -> int:
        return self._tokens.issued

    # public calls

    def fetch(
        self, path: str, params: Params | None = None, *, page: int | None = None
    ) -> Envelope:
        """One GET of an API path (e.g. "/coverage/meta"), retried, as a success envelope."""
        request = Request("GET", path, page)
        query = dict(params or {})
        if page is not None:
            query.update(page=page, per_page=self.settings.per_page)
        retrying = self._retry.retrying(self._cancelled)
        return retrying(self._get_envelope, request, query)

    def subscriber(self, subscriber_id: str | int) -> Record:
        data = self.fetch(f"/subscriber/{subscriber_id}").data
        record = data[0] if isinstance(data, list) and data else data
        if not isinstance(record, dict):
            raise PlanSourceApiError(
                "plansource-bad-envelope",
                f"GET /subscriber/{subscriber_id}: data is not a subscriber record",
                record_ids=[str(subscriber_id)],
            )
        return record

    def pages(self, path: str, params: Params | None = None) -> Iterator[Page]:
        """Every page of a list endpoint, in page order."""
        first = self._page(path, params, 1)
        if first.total is None:
            yield first
            yield from self._follow(path, params, first)
            return
        # The server's own per_page (it may cap ours) decides how many pages the total makes.
        echoed = first.per_page if first.per_page and first.per_page > 0 else None
        per_page = echoed or self.settings.per_page
        self._check_size(first, first.total, per_page)
        yield first
        last = max(1, math.ceil(first.total / per_page))
        for page in self._fan_out(path, params, range(2, last + 1)):
            self._check_size(page, first.total, per_page)
            yield page

    def records(self, path: str, params: Params | None = None) -> Iterator[Record]:
        for page in self.pages(path, params):
            yield from page.records

    # pagination

    def _page(self, path: str, params: Params | None, number: int) -> Page:
        envelope = self.fetch(path, params, page=number)
        data = envelope.data
        if not isinstance(data, list):
            raise PlanSourceApiError(
                "plansource-bad-envelope",
                f"{Request('GET', path, number)}: envelope 'data' is not a list",
                details=Request("GET", path, number).facts(),
            )
        total, per_page, has_next = _pagination(envelope.body)
        return Page(path, number, data, total, per_page, has_next, envelope.raw)

    def _fan_out(self, path: str, params: Params | None, numbers: range) -> Iterator[Page]:
        """Pages fetched by the pool, yielded in order; only the window is ever held."""
        window = 2 * self.settings.concurrency
        upcoming = iter(numbers)
        pending: deque[Future[Page]] = deque()
        try:
            for number in upcoming:
                pending.append(self._pool.submit(self._page, path, params, number))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def _follow(self, path: str, params: Params | None, first: Page) -> Iterator[Page]:
        page = first
        while len(page.records) >= self.settings.per_page and page.has_next is not False:
            page = self._page(path, params, page.number + 1)
            if not page.records:
                return
            yield page

    @staticmethod
    def _check_size(page: Page, total: int, per_page: int) -> None:
        request = Request("GET", page.endpoint, page.number)
        if page.total != total:
            raise PlanSourceApiError(
                "plansource-total-changed",
                f"{request}: total {page.total} differs from the first page's {total}",
                hint="The data changed during the pull; run it again.",
                details=request.facts(),
            )
        expected = max(0, min(per_page, total - (page.number - 1) * per_page))
        if len(page.records) == expected:
            return
        kind = "short" if len(page.records) < expected else "long"
        raise PlanSourceApiError(
            f"plansource-{kind}-page",
            f"{request}: {len(page.records)} records, but total {total} at per_page "
            f"{per_page} promises {expected}",
            hint="PlanSource sent an incomplete page; run the pull again.",
            details=request.facts(),
        )

    # one request

    def _get_envelope(self, request: Request, query: dict[str, str | int]) -> Envelope:
        url = self.base_url + request.path
        token = self._tokens.current()
        response = self._send(request, url, query, token)
        if response.status_code == 401:
            # Revoked early or clock skew: one fresh token, once; a second 401 is final.
            response = self._send(request, url, query, self._tokens.refresh(stale=token))
            if response.status_code == 401:
                raise PlanSourceApiError(
                    "plansource-unauthorized",
                    f"{request}: HTTP 401 even with a fresh token",
                    hint="The API user may lack the admin_api_v2 scope or access to this org.",
                    details=request.facts(401),
                )
        if not response.is_success:
            raise _status_error(response, request)
        return _read_envelope(response, request)

    def _send(
        self, request: Request, url: str, query: dict[str, str | int], token: str
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return self._transport_call(
            request, lambda: self._http.get(url, params=query, headers=headers)
        )

    def _transport_call(
        self, request: Request, call: Callable[[], httpx.Response]
    ) -> httpx.Response:
        try:
            return call()
        except httpx.TimeoutException as exc:
            raise PlanSourceTransientError(
                "plansource-timeout",
                f"{request}: no answer within {self.settings.timeout_s:g} s",
                details=request.facts(),
            ) from exc
        except httpx.TransportError as exc:
            host = urlsplit(self.base_url).netloc
            raise PlanSourceTransientError(
                "plansource-unreachable",
                f"{request}: cannot reach {host} ({type(exc).__name__})",
                hint="Check base_url / token_url and the network path to PlanSource.",
                details=request.facts(),
            ) from exc

    def _token_request(self) -> tuple[str, float]:
        """One token request; it runs inside a retried API call, so it is not retried itself."""
        token_url = self.settings.token_url
        request = Request("POST", urlsplit(token_url).path or "/")
        form = {"grant_type": "client_credentials", "scope": SCOPE}
        form.update(self._credentials.form(token_url))
        response = self._transport_call(request, lambda: self._http.post(token_url, data=form))
        if response.status_code in (400, 401, 403):
            body = _json_body(response)
            error = body.get("error") if isinstance(body, dict) else None
            raise PlanSourceApiError(
                "plansource-auth-failed",
                f"{request}: HTTP {response.status_code}"
                + (f" ({str(error)[:MESSAGE_LIMIT]})" if error else "")
                + f" for client_id {self._credentials.client_id}",
                hint="Check client_id and the client secret (or the private key) in edi.toml.",
                details=request.facts(response.status_code),
            )
        if not response.is_success:
            raise _status_error(response, request)
        body = _json_body(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise PlanSourceApiError(
                "plansource-auth-failed", f"{request}: the answer carries no access_token"
            )
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        return token, lifetime
