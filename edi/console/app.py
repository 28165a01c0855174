"""The console as a starlette app: GET and HEAD only, server-rendered HTML (jinja2) with one
stylesheet from this package, the same data as JSON under /api/, and a guard in front of it all
(bearer token, method check, security headers)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import transmit
from edi.console.data import ConsoleData, NotFound
from edi.errors import EdiError
from edi.workspace import Workspace

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATIC = Path(__file__).parent / "static"
ALLOWED_METHODS = ("GET", "HEAD")
ACCESS_DENIED = ("store-access-denied", "log-access-denied")
PAGE_ROWS = 500  # the deliveries page lists the newest ones; the filters and /api/ reach all
CSP = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def host_name(header: bytes) -> str:
    """`Host: name:port` → `name` (IPv6 literals keep their brackets)."""
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text.split("]", 1)[0] + "]"
    return text.rpartition(":")[0] if ":" in text else text


class Guard:
    """Every request: a bearer token when one is configured (compared in constant time), a Host
    header naming this machine when `allowed_hosts` is set (a console without a token on
    loopback must not answer pages that a DNS-rebinding site makes the browser ask for), GET or
    HEAD only, and the security headers on every answer; nothing but the stylesheet is cached."""

    def __init__(
        self, app: ASGIApp, token: str | None, allowed_hosts: tuple[str, ...] | None = None
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        cacheable = path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"cache-control", b"server")
                ]
                headers.extend(SECURITY_HEADERS)
                headers.append(
                    (b"cache-control", b"private, max-age=300" if cacheable else b"no-store")
                )
                message["headers"] = headers
            await send(message)

        if self.allowed_hosts is not None and self._host(scope) not in self.allowed_hosts:
            response: Response = PlainTextResponse(
                "421 misdirected request: this console answers only to its own address\n",
                status_code=421,
            )
            await response(scope, receive, send_with_headers)
            return
        if self.token is not None and not self._authorized(scope):
            response = PlainTextResponse(
                "401 unauthorized: send Authorization: Bearer <token>\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="edi console"'},
            )
            await response(scope, receive, send_with_headers)
            return
        if scope.get("method") not in ALLOWED_METHODS:
            response = PlainTextResponse(
                "405 method not allowed: this console is read-only\n",
                status_code=405,
                headers={"Allow": ", ".join(ALLOWED_METHODS)},
            )
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _host(scope: Scope) -> str:
        for key, value in scope.get("headers", []):
            if key.lower() == b"host":
                return host_name(bytes(value))
        return ""

    def _authorized(self, scope: Scope) -> bool:
        assert self.token is not None
        given = b""
        for key, value in scope.get("headers", []):
            if key.lower() == b"authorization":
                given = bytes(value)
                break
        scheme, _, credential = given.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(credential.strip(), self.token)


def _templates() -> Environment:
    environment = Environment(
        loader=PackageLoader("edi.console", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["label"] = lambda key: str(key).replace("_", " ")
    environment.filters["when"] = _when
    environment.filters["short"] = lambda value: f"{str(value)[:16]}…" if value else "-"
    return environment


def _when(value: object) -> str:
    """ISO timestamps as `2026-11-24 14:05 UTC`; anything else as text."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day(request: Request, name: str) -> date | None:
    text = request.query_params.get(name) or None
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HTTPException(400, f"{name} must be YYYY-MM-DD") from None


def _json(data: Any, status_code: int = 200) -> Response:
    return Response(
        json.dumps(data, indent=2, default=str, sort_keys=False) + "\n",
        status_code=status_code,
        media_type="application/json",
    )


def create_app(
    workspace: Workspace,
    *,
    token: str | None = None,
    allowed_hosts: tuple[str, ...] | None = None,
    now: Callable[[], datetime] | None = None,
) -> ASGIApp:
    data = ConsoleData(workspace, now or (lambda: datetime.now(UTC)))
    templates = _templates()

    def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
        html = templates.get_template(template).render(
            workspace=data.workspace_facts(), path=request.url.path, **context
        )
        return HTMLResponse(html, status_code=status_code)

    def overview(request: Request) -> Response:
        verification, discrepancies = data.verification(), data.discrepancies()
        return page(
            request,
            "overview.html.j2",
            carriers=data.carrier_rows(verification, discrepancies),
            verification=verification,
            reconciled=discrepancies is not None,
        )

    def _filters(request: Request) -> dict[str, Any]:
        carrier = request.query_params.get("carrier") or None
        if carrier is not None and carrier not in data.carrier_names():
            raise HTTPException(404, f"no carrier profile {carrier!r}")
        return {
            "carrier": carrier,
            "since": _day(request, "since"),
            "until": _day(request, "until"),
        }

    def deliveries(request: Request) -> Response:
        filters = _filters(request)
        rows = data.deliveries(**filters)
        return page(
            request,
            "deliveries.html.j2",
            deliveries=rows[:PAGE_ROWS],
            total=len(rows),
            filters=filters,
            carriers=data.carrier_names(),
        )

    def delivery(request: Request) -> Response:
        return page(request, "delivery.html.j2", d=data.delivery(int(request.path_params["seq"])))

    def log(request: Request) -> Response:
        return page(request, "log.html.j2", log=data.log_info())

    def export(request: Request) -> Response:
        fmt = request.path_params["fmt"]
        if fmt not in ("csv", "json"):
            raise HTTPException(404, "exports are export.csv and export.json")
        media = "text/csv" if fmt == "csv" else "application/json"
        return Response(
            data.export(fmt),
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="delivery-log.{fmt}"'},
        )

    def public_key(request: Request) -> Response:
        key = data.public_key()
        if key is None:
            raise HTTPException(404, "the delivery log has no signing key yet")
        return PlainTextResponse(key, media_type="application/x-pem-file")

    def discrepancies(request: Request) -> Response:
        return page(request, "discrepancies.html.j2", d=data.discrepancy_groups())

    def diff(request: Request) -> Response:
        return page(
            request,
            "diff.html.j2",
            diff=data.diff(request.path_params["name"], _day(request, "as_of")),
        )

    def api_carriers(request: Request) -> Response:
        return _json({"workspace": data.workspace_facts(), "carriers": data.carriers()})

    def api_carrier_diff(request: Request) -> Response:
        return _json(data.diff(request.path_params["name"], _day(request, "as_of")))

    def api_deliveries(request: Request) -> Response:
        return _json({"deliveries": data.deliveries(**_filters(request))})

    def api_delivery(request: Request) -> Response:
        return _json(data.delivery(int(request.path_params["seq"])))

    def api_discrepancies(request: Request) -> Response:
        items = data.discrepancies()
        return _json({"reconciled": items is not None, "discrepancies": items or []})

    def api_log(request: Request) -> Response:
        return _json(data.log_info())

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if wants_json(request):
            return _json(
                {"error": {"status": exc.status_code, "message": exc.detail}}, exc.status_code
            )
        return page(
            request,
            "error.html.j2",
            status_code=exc.status_code,
            status=exc.status_code,
            message=exc.detail,
            code=None,
            hint=None,
        )

    def not_found(request: Request, exc: Exception) -> Response:
        return http_error(request, HTTPException(404, str(exc)))

    def app_error(request: Request, exc: Exception) -> Response:
        """Configuration or log problems: code, message and hint (they never carry PHI)."""
        code = getattr(exc, "code", "error")
        message = getattr(exc, "message", str(exc))
        hint = getattr(exc, "hint", "")
        # Another employer's store credentials: refused (403), not a server fault.
        status = 403 if code in ACCESS_DENIED else 500
        if wants_json(request):
            return _json(
                {"error": {"status": status, "code": code, "message": message, "hint": hint}},
                status,
            )
        return page(
            request,
            "error.html.j2",
            status_code=status,
            status=status,
            message=message,
            code=code,
            hint=hint,
        )

    routes = [
        Route("/", overview),
        Route("/deliveries", deliveries),
        Route("/deliveries/{seq:int}", delivery),
        Route("/log", log),
        Route("/log/export.{fmt:str}", export),
        Route("/log/public-key.pem", public_key),
        Route("/discrepancies", discrepancies),
        Route("/carriers/{name:str}/diff", diff),
        Route("/api/carriers", api_carriers),
        Route("/api/carriers/{name:str}/diff", api_carrier_diff),
        Route("/api/deliveries", api_deliveries),
        Route("/api/deliveries/{seq:int}", api_delivery),
        Route("/api/discrepancies", api_discrepancies),
        Route("/api/log", api_log),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: http_error,
            NotFound: not_found,
            EdiError: app_error,
            transmit.TransmitError: app_error,
        },
    )
    # Outermost, so even the server's own error answers carry the headers.
    return Guard(app, token, allowed_hosts)
