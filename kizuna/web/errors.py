"""Maps every error to a body naming the problem and the field at fault; nothing leaks as a bare 500.

API paths answer the JSON error shape; every other path is a UI page and answers an HTML error page, so a
browser never lands on raw JSON (a 404 from the router, a 405, a form body over the limit).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kizuna.errors import KizunaError

log = logging.getLogger("kizuna.http")


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field, **extra}}


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "")


# The tracking API (/v1/) answers JSON like the main API.
API_PATHS = ("/api/", "/v1/", "/openapi.json", "/healthz", "/chat/v1/")


def is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PATHS)


def answer(
    request: Request,
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    exc: KizunaError | None = None,
    **extra: Any,
) -> Response:
    """The error as the client reads it: the JSON error shape for the API, an HTML page for the UI."""
    if is_api(request):
        return JSONResponse(error_body(code, message, field, **extra), status_code=status, headers=headers)
    from kizuna.web.ui_base import SECURITY_HEADERS, error_page

    _resume_viewer(request)
    # The status's own text in the user's language (Starlette's "Not Found" is English and says little).
    response = error_page(request, status, exc=exc, detail=message)
    for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
        response.headers[name] = value
    return response


def _resume_viewer(request: Request) -> None:
    """For an error no UI route saw (an unknown path, a wrong method): find the signed-in viewer, so that the
    page has the navigation and the user's own language (their locale when no language was picked)."""
    from kizuna.db import new_session
    from kizuna.web.deps import SESSION_COOKIE
    from kizuna.web.session import current_viewer

    if getattr(request.state, "viewer", None) is not None or not request.cookies.get(SESSION_COOKIE):
        return
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        return
    session = new_session(engine)
    try:
        current_viewer(request, session)  # sets request.state.viewer
    except Exception:  # noqa: BLE001, S110 - not signed in (or the database is the problem): a bare error page
        pass
    finally:
        session.close()


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (several routes share a path, one per method)."""
    allowed = []
    for method in METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def install(app: FastAPI) -> None:
    @app.exception_handler(KizunaError)
    async def _domain(request: Request, exc: KizunaError) -> Response:
        return answer(request, exc.status_code, exc.code, exc.message, exc.field, exc=exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                # A model-level check names its field in ctx (e.g. invalid Unicode deep in a body).
                "field": (e.get("ctx") or {}).get("field") or _loc(tuple(e.get("loc", ()))),
                "message": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        if first.get("type") == "json_invalid":
            message = f"request body is not valid JSON: {first['message']}"
        elif first.get("type") == "extra_forbidden":
            message = f"unknown field '{first['field']}'"
        else:
            message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return answer(request, 422, "invalid", message, first["field"], errors=errors)

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError) -> Response:
        # A write that lost a race on the version: the precondition the client named failed. 412 when it named
        # it with If-Match (as for a stale If-Match found before writing), 409 when with a ``version`` field.
        message = "the record was changed by someone else at the same time; read it again"
        if request.headers.get("if-match"):
            return answer(request, 412, "precondition_failed", message)
        return answer(request, 409, "conflict", message, "version")

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> Response:
        log.info("integrity error: %s", exc.orig)
        message = f"the change conflicts with stored data: {str(exc.orig).splitlines()[0]}"
        return answer(request, 409, "conflict", message)

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> Response:
        return answer(request, 422, "invalid", "a number in the request is out of range")

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> Response:
        # The database refused a value the schema let through (out-of-range number, invalid text).
        log.info("data error: %s", exc.orig)
        message = f"a value is not acceptable to the database: {str(exc.orig).splitlines()[0]}"
        return answer(request, 422, "invalid", message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(getattr(exc, "headers", None) or {})
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code)
        if exc.status_code == 405:
            # Starlette names only the methods of the first route at the path; a path has one route per method.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return answer(request, exc.status_code, code or f"http_{exc.status_code}", str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return answer(request, 500, "internal", "something went wrong on the server; the error was logged")


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413 before they reach a handler.

    ``uploads`` names the paths that take file uploads (import files) with their own, larger limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, uploads: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = uploads or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.uploads.get(scope.get("path", ""), self.max_bytes) if scope.get("method") == "POST" else None
        limit = limit or self.max_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._too_large(scope, receive, send, limit)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # An HTTPException, so that FastAPI's body parsing passes it on instead of answering 400.
                    raise _TooLarge(413, f"request body is larger than {limit} bytes")
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(scope, receive, send, limit)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        request = Request(scope)
        response = answer(request, 413, "too_large", f"request body is larger than {limit} bytes")
        await response(scope, receive, send)


class _TooLarge(StarletteHTTPException):
    pass


class NoSniff:
    """``X-Content-Type-Options: nosniff`` on every response (API, static files), not only UI pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-content-type-options" for name, _ in headers):
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)
