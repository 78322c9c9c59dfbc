"""Maps every error to a JSON body naming the problem and the field at fault; nothing leaks as a 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kizuna.errors import KizunaError

log = logging.getLogger("kizuna.http")


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field, **extra}}


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "")


def install(app: FastAPI) -> None:
    @app.exception_handler(KizunaError)
    async def _domain(request: Request, exc: KizunaError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
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
        return JSONResponse(error_body("invalid", message, first["field"], errors=errors), status_code=422)

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError) -> JSONResponse:
        return JSONResponse(
            error_body("conflict", "the record was changed by someone else at the same time; read it again", "version"),
            status_code=409,
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity error: %s", exc.orig)
        return JSONResponse(
            error_body("conflict", f"the change conflicts with stored data: {str(exc.orig).splitlines()[0]}"),
            status_code=409,
        )

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        return JSONResponse(error_body("invalid", "a number in the request is out of range"), status_code=422)

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the schema let through (out-of-range number, invalid text).
        log.info("data error: %s", exc.orig)
        return JSONResponse(
            error_body("invalid", f"a value is not acceptable to the database: {str(exc.orig).splitlines()[0]}"),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body("http_" + str(exc.status_code), str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413 before they reach a handler."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._too_large(send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            error_body("too_large", f"request body is larger than {self.max_bytes} bytes"), status_code=413
        )
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
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
