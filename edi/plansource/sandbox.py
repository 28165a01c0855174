"""A PlanSource-compatible API on this machine, for tests, benchmarks and trying profiles.

An export folder is served the way PlanSource serves it: Admin API v2 paths under `/admin/v2`,
the `{"status", "errors", "data"}` envelope, `page`/`per_page` pagination (max 500) with `total`,
`page`, `per_page` and a `next` link, an OAuth2 client-credentials token endpoint
(`/oauth/v2/token`, client secret or RS256 JWT assertion) and bearer checks.

Fault switches (`Faults`; constructor, `edi sandbox plansource` flags, or at run time with
`POST /_sandbox/faults` and a JSON object) make it misbehave the ways a real API does. Page
faults name a page as `endpoint:page`, e.g. `coverages:2`. `GET /_sandbox/stats` counts requests,
tokens, statuses and the most API requests ever in flight at once.

    with running_sandbox(PlanSourceSandbox(Path("samples/plansource"))) as base_url:
        ...  # base_url == "http://127.0.0.1:<free port>/admin/v2"

Records are held as their JSON bytes and pages are spliced from them, so a 100k-employee export
is served quickly from one process.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import jwt
import uvicorn
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edi.plansource.export import raw_records
from edi.plansource.models import parse_date
from edi.workspace import PlanSourceSettings

API_PREFIX = "/admin/v2"
TOKEN_PATH = "/oauth/v2/token"
SCOPE = "admin_api_v2"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_CLIENT_ID = "sandbox"
DEFAULT_CLIENT_SECRET = "sandbox-secret"
MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 100
KINDS = ("subscribers", "dependents", "coverages")
# Not a date in any format PlanSource uses, but shaped like one: February has no 30th.
MALFORMED_DATE = "2026/02/30"
DATE_FIELDS = (
    "birthdate",
    "hire_date",
    "benefits_start_date",
    "original_effective_date",
    "change_effective_date",
    "termination_date",
)
DEFAULT_META: dict[str, Any] = {
    "coverage": {
        "termination_reasons": [
            {"code": code, "name": code.replace("_", " ").title()}
            for code in (
                "employment_termination",
                "divorce",
                "overage_child",
                "dependent_death",
                "voluntarily_waived",
                "plan_change",
            )
        ]
    },
    "dependent": {
        "relationship_codes": [
            "spouse",
            "domestic_partner",
            "civil_union",
            "child",
            "stepchild",
            "foster_child",
            "legal_ward",
            "adopted_child",
        ]
    },
    "subscriber": {"employment_levels": ["F", "P"], "genders": ["M", "F", ""]},
}

PageRef = Annotated[str, Field(pattern=r"^(subscribers|dependents|coverages):[1-9][0-9]*$")]


class Faults(BaseModel):
    """What the sandbox does wrong. Counters ("every Nth") count API requests, not tokens."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency_ms: float = Field(0, ge=0, description="delay before every API answer")
    rate_limit_every: int = Field(0, ge=0, description="every Nth API request is throttled")
    throttle_status: Literal[429, 503] = 429
    retry_after_s: float = Field(1, ge=0, description="Retry-After sent with a throttle")
    error_every: int = Field(0, ge=0, description="every Nth API request answers HTTP 500")
    failure_page: PageRef | None = Field(None, description='HTTP 200, "status": "failure"')
    malformed_dates: bool = Field(False, description="first record of each page: a bad date")
    token_expires_s: float = Field(3600, gt=0, description="token lifetime, announced & enforced")
    token_max_uses: int = Field(0, ge=0, description="a token is revoked after N API requests")
    reject_tokens: bool = Field(False, description="every bearer token gets HTTP 401")
    not_json_page: PageRef | None = Field(None, description="an HTML page with HTTP 200")
    short_page: PageRef | None = Field(None, description="one record fewer than promised")
    missing_id_page: PageRef | None = Field(None, description="first record without its id")
    duplicate_id_page: PageRef | None = Field(None, description="first record reuses page 1's id")


def _hits(ref: str | None, kind: str, page: int) -> bool:
    return ref == f"{kind}:{page}"


@dataclass
class SandboxStats:
    api_requests: int = 0
    token_requests: int = 0
    tokens_issued: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "api_requests": self.api_requests,
            "token_requests": self.token_requests,
            "tokens_issued": self.tokens_issued,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "statuses": {str(code): count for code, count in sorted(self.statuses.items())},
        }


@dataclass
class _Collection:
    """One export file as JSON bytes per record, with an id index for the lookups."""

    records: list[bytes] = field(default_factory=list)
    ids: dict[str, int] = field(default_factory=dict)
    owners: list[str] = field(default_factory=list)
    updated: list[date | None] = field(default_factory=list)

    def add(self, record: dict[str, Any]) -> None:
        self.ids.setdefault(str(record.get("id")), len(self.records))
        self.owners.append(str(record.get("subscriber_id", "")))
        self.updated.append(_updated_at(record))
        self.records.append(_dumps(record))


@dataclass
class _Token:
    expires_at: float
    uses: int = 0


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _updated_at(record: dict[str, Any]) -> date | None:
    value = record.get("updated_at")
    if not isinstance(value, str):
        return None
    try:
        return parse_date(value)
    except ValueError:
        return None


def _failure(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    errors = {"http_status": status, "message": message, "details": "", "error_code": code}
    return JSONResponse(
        {"status": "failure", "errors": errors, "data": []}, status_code=status, headers=headers
    )


def _success(data: Any) -> Response:
    return Response(
        b'{"status":"success","errors":[],"data":' + _dumps(data) + b"}",
        media_type="application/json",
    )


def _load_meta(data_dir: Path) -> dict[str, Any]:
    """`meta/<name>.json` beside the export (a pulled snapshot has them), else defaults."""
    meta = dict(DEFAULT_META)
    for name in meta:
        path = data_dir / "meta" / f"{name}.json"
        if path.exists():
            loaded = json.loads(path.read_text(encoding="utf-8"))
            is_envelope = isinstance(loaded, dict) and "data" in loaded
            meta[name] = loaded["data"] if is_envelope else loaded
    return meta


Handler = Callable[[Request], Response]


class PlanSourceSandbox:
    """The ASGI app (`.app`) over one export folder; `faults` may be changed while it runs."""

    def __init__(
        self,
        data_dir: Path,
        faults: Faults | None = None,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        client_public_key: bytes | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.faults = faults or Faults()
        self.stats = SandboxStats()
        self.client_id = client_id
        self._client_secret = client_secret
        self._public_key = client_public_key
        self._tokens: dict[str, _Token] = {}
        self._data = {kind: self._load(data_dir / f"{kind}.json") for kind in KINDS}
        self._meta = _load_meta(data_dir)
        self.app = Starlette(routes=self._routes())

    @staticmethod
    def _load(path: Path) -> _Collection:
        collection = _Collection()
        for record in raw_records(path):
            collection.add(record)
        return collection

    def counts(self) -> dict[str, int]:
        return {kind: len(self._data[kind].records) for kind in KINDS}

    def settings_for(self, base_url: str, **overrides: Any) -> PlanSourceSettings:
        """Workspace settings that point a client at this sandbox (secret via the env var)."""
        values: dict[str, Any] = {
            "base_url": base_url,
            "token_url": base_url.removesuffix(API_PREFIX) + TOKEN_PATH,
            "client_id": self.client_id,
        }
        values.update(overrides)
        return PlanSourceSettings(**values)

    # routing

    def _routes(self) -> list[Route]:
        api = API_PREFIX
        routes = [
            Route(TOKEN_PATH, self._token, methods=["POST"]),
            Route("/_sandbox/stats", self._stats, methods=["GET"]),
            Route("/_sandbox/faults", self._set_faults, methods=["GET", "POST"]),
        ]
        for kind in KINDS:
            routes.append(Route(f"{api}/{kind}", self._api(self._list_handler(kind))))
        for name in ("subscriber", "coverage", "dependent"):
            routes.append(Route(f"{api}/{name}/meta", self._api(self._meta_handler(name))))
        routes += [
            Route(f"{api}/subscriber/{{sid}}/dependent/{{did}}", self._api(self._dependent)),
            Route(f"{api}/subscriber/{{id}}", self._api(self._one("subscribers"))),
            Route(f"{api}/coverage/{{id}}", self._api(self._one("coverages"))),
            Route(f"{api}/{{rest:path}}", self._api(self._not_found)),
        ]
        return routes

    def _api(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Counting, latency, the bearer check and the request-level faults, for every API path."""

        async def endpoint(request: Request) -> Response:
            stats = self.stats
            stats.api_requests += 1
            number = stats.api_requests
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            try:
                response = await self._guarded(request, number, handler)
            finally:
                stats.in_flight -= 1
            stats.statuses[response.status_code] += 1
            return response

        return endpoint

    async def _guarded(self, request: Request, number: int, handler: Handler) -> Response:
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        refused = self._check_bearer(request)
        if refused is not None:
            return refused
        if faults.rate_limit_every and number % faults.rate_limit_every == 0:
            retry_after = {"Retry-After": f"{faults.retry_after_s:g}"}
            status = faults.throttle_status
            return _failure(status, "rate_limited", "Too many requests", retry_after)
        if faults.error_every and number % faults.error_every == 0:
            return _failure(500, "internal_error", "Internal server error")
        return handler(request)

    # auth

    def _check_bearer(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _failure(401, "unauthorized", "A bearer token is required")
        issued = self._tokens.get(token)
        if issued is None or self.faults.reject_tokens:
            return _failure(401, "invalid_token", "The access token is not valid")
        if time.monotonic() >= issued.expires_at:
            return _failure(401, "token_expired", "The access token has expired")
        issued.uses += 1
        if self.faults.token_max_uses and issued.uses > self.faults.token_max_uses:
            return _failure(401, "token_revoked", "The access token was revoked")
        return None

    async def _token(self, request: Request) -> Response:
        self.stats.token_requests += 1
        body = (await request.body()).decode("utf-8", "replace")
        form = {key: values[0] for key, values in parse_qs(body).items()}
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if form.get("scope") != SCOPE:
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        if not self._client_ok(form):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        lifetime = self.faults.token_expires_s
        token = secrets.token_urlsafe(24)
        self._tokens[token] = _Token(time.monotonic() + lifetime)
        self.stats.tokens_issued += 1
        expires_in = int(lifetime) if lifetime == int(lifetime) else lifetime
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
        )

    def _client_ok(self, form: dict[str, str]) -> bool:
        if "client_assertion" in form:
            return self._assertion_ok(form)
        secret = form.get("client_secret", "")
        return form.get("client_id") == self.client_id and secrets.compare_digest(
            secret.encode(), self._client_secret.encode()
        )

    def _assertion_ok(self, form: dict[str, str]) -> bool:
        if self._public_key is None or form.get("client_assertion_type") != JWT_BEARER:
            return False
        try:
            claims = jwt.decode(
                form["client_assertion"],
                self._public_key,
                algorithms=["RS256"],
                options={"verify_aud": False, "require": ["exp", "iat", "iss", "sub", "aud"]},
            )
        except jwt.InvalidTokenError:
            return False
        # The audience is the token URL as the client knows it; its path is what we can check.
        audience_ok = str(claims.get("aud", "")).endswith(TOKEN_PATH)
        same_client = claims.get("iss") == claims.get("sub") == self.client_id
        return (
            audience_ok
            and same_client
            and form.get("client_id", self.client_id) == (self.client_id)
        )

    # admin

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(self.stats.as_dict())

    async def _set_faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                update = json.loads(await request.body() or b"{}")
                self.faults = Faults.model_validate({**self.faults.model_dump(), **update})
            except (ValueError, TypeError, ValidationError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self.faults.model_dump())

    # API handlers (synchronous: splicing bytes never waits)

    def _list_handler(self, kind: str) -> Handler:
        def handler(request: Request) -> Response:
            try:
                page = int(request.query_params.get("page", "1"))
                per_page = int(request.query_params.get("per_page", str(DEFAULT_PER_PAGE)))
                since = request.query_params.get("updated_since")
                since_day = parse_date(since) if since else None
            except ValueError:
                return _failure(400, "invalid_parameter", "page, per_page or updated_since")
            if page < 1 or per_page < 1:
                return _failure(400, "invalid_parameter", "page and per_page start at 1")
            return self._page(request, kind, page, min(per_page, MAX_PER_PAGE), since_day)

        return handler

    def _page(
        self, request: Request, kind: str, page: int, per_page: int, since: date | None
    ) -> Response:
        collection = self._data[kind]
        selected: range | list[int] = range(len(collection.records))
        if since is not None:
            # Records without `updated_at` cannot be ruled out, so they are always included.
            selected = [i for i in selected if (collection.updated[i] or since) >= since]
        start = (page - 1) * per_page
        chunk = [collection.records[i] for i in selected[start : start + per_page]]
        total = len(selected)
        faults = self.faults
        if _hits(faults.not_json_page, kind, page):
            return Response(b"<html><body>502 Bad Gateway</body></html>", media_type="text/html")
        if _hits(faults.failure_page, kind, page):
            return _failure(200, "report_failed", "The report could not be generated")
        chunk = self._damaged(kind, page, chunk)
        has_next = start + per_page < total
        next_url = str(request.url.include_query_params(page=page + 1)) if has_next else None
        tail = _dumps({"page": page, "per_page": per_page, "total": total, "next": next_url})
        body = b'{"status":"success","errors":[],"data":[' + b",".join(chunk) + b"]," + tail[1:]
        return Response(body, media_type="application/json")

    def _damaged(self, kind: str, page: int, chunk: list[bytes]) -> list[bytes]:
        """The record-level faults, applied to the first record of the page they name."""
        faults = self.faults
        if not chunk:
            return chunk
        chunk = list(chunk)
        if _hits(faults.short_page, kind, page):
            chunk.pop()
        if not chunk:
            return chunk
        first = json.loads(chunk[0])
        if _hits(faults.missing_id_page, kind, page):
            first.pop("id", None)
        if _hits(faults.duplicate_id_page, kind, page):
            first["id"] = json.loads(self._data[kind].records[0]).get("id")
        if faults.malformed_dates:
            for name in DATE_FIELDS:
                if first.get(name):
                    first[name] = MALFORMED_DATE
                    break
        chunk[0] = _dumps(first)
        return chunk

    def _meta_handler(self, name: str) -> Handler:
        def handler(request: Request) -> Response:
            return _success(self._meta[name])

        return handler

    def _one(self, kind: str) -> Handler:
        def handler(request: Request) -> Response:
            collection = self._data[kind]
            index = collection.ids.get(request.path_params["id"])
            if index is None:
                return _failure(404, "not_found", f"No such {kind[:-1]}")
            return Response(
                b'{"status":"success","errors":[],"data":' + collection.records[index] + b"}",
                media_type="application/json",
            )

        return handler

    def _dependent(self, request: Request) -> Response:
        dependents = self._data["dependents"]
        index = dependents.ids.get(request.path_params["did"])
        if index is None or dependents.owners[index] != request.path_params["sid"]:
            return _failure(404, "not_found", "No such dependent of this subscriber")
        return Response(
            b'{"status":"success","errors":[],"data":' + dependents.records[index] + b"}",
            media_type="application/json",
        )

    def _not_found(self, request: Request) -> Response:
        return _failure(404, "not_found", "No such endpoint")


# --- running it -----------------------------------------------------------------------------


def _config(sandbox: PlanSourceSandbox, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        sandbox.app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="asyncio",
        http="h11",
        timeout_graceful_shutdown=2,
    )


def serve(sandbox: PlanSourceSandbox, host: str = "127.0.0.1", port: int = 8700) -> None:
    """Serve in the foreground until Ctrl-C (the CLI's `edi sandbox plansource`)."""
    uvicorn.Server(_config(sandbox, host, port)).run()


@contextmanager
def running_sandbox(
    sandbox: PlanSourceSandbox, host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 10
) -> Iterator[str]:
    """The sandbox served from a background thread; yields its API base URL.

    We bind the socket ourselves so port 0 (an ephemeral port) is known before uvicorn starts."""
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets that say they are TCP,
    # and without it every keep-alive response waits ~40 ms for a delayed ACK.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    bound_port = listener.getsockname()[1]
    server = uvicorn.Server(_config(sandbox, host, bound_port))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="plansource-sandbox", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the PlanSource sandbox did not start")
            time.sleep(0.005)
        yield f"http://{host}:{bound_port}{API_PREFIX}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
