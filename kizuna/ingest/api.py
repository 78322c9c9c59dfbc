"""The Segment-compatible tracking API: ``/v1/identify``, ``/track``, ``/page``, ``/screen``, ``/group``,
``/alias`` and ``/batch``, with the source's write key as the HTTP Basic user (as Segment's SDKs send it).

Answers as Segment documents: 200 ``{"success": true}`` for every call taken, 400 for a malformed JSON body or one
over the size limits (32 KB a call, 500 KB a batch). A message that cannot be kept (no userId nor anonymousId, a
track without an event name, a time in the future) is left out and named in ``rejected``; the other messages of
the batch are kept. A missing, unknown or revoked write key answers 401 (Segment's documents say nothing here).
Browsers post from the site's own origin, so the answers allow any origin (the write key is public by design).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from kizuna.db import new_session
from kizuna.errors import KizunaError
from kizuna.ingest import group, service, sources, spec

router = APIRouter(prefix="/v1", tags=["tracking"])
snippet = APIRouter(tags=["tracking"])
SNIPPET = Path(__file__).parent / "static" / "kizuna.js"
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86400",
}


def _answer(status: int, body: dict[str, Any]) -> JSONResponse:
    headers = dict(_CORS)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="kizuna tracking"'
    return JSONResponse(body, status_code=status, headers=headers)


def _fail(status: int, message: str, field: str | None = None) -> JSONResponse:
    return _answer(status, {"success": False, "error": message, "field": field})


def write_key(authorization: str | None, body: dict[str, Any]) -> str | None:
    """The Basic user name, or ``writeKey`` in the body (what ``navigator.sendBeacon``, which sends no header, uses)."""
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.split(":", 1)[0] or None
    key = body.get("writeKey")
    return key if isinstance(key, str) else None


async def _take(request: Request, call: str | None) -> Response:
    raw = await request.body()
    if request.headers.get("content-encoding", "").lower() == "gzip":
        try:
            # Bounded: a body that inflates past the limit is refused like an oversized one.
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, spec.MAX_BATCH_BYTES + 1)
        except zlib.error:
            return _fail(400, "request body is not valid gzip", "body")
    limit = spec.MAX_BATCH_BYTES if call is None else spec.MAX_CALL_BYTES
    if len(raw) > limit:
        return _fail(400, f"request body is {len(raw)} bytes; the limit is {limit // 1024} KB", "body")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return _fail(400, f"request body is not valid JSON: {exc}", "body")
    if not isinstance(body, dict):
        return _fail(400, "request body must be a JSON object", "body")
    if call is None:
        messages = body.get("batch")
        if not isinstance(messages, list):
            return _fail(400, "a batch call needs a 'batch' array of messages", "batch")
    else:
        messages = [body]
    key = write_key(request.headers.get("authorization"), body)
    sent = body.get("sentAt") if call is None else None
    engine = request.app.state.engine

    batch = group.Batch(key, messages, call, sent, check_sizes=call is None and len(raw) > spec.MAX_CALL_BYTES)

    def work() -> Response:
        status, answer = group.for_engine(engine).store(batch, lambda b: _alone(engine, b))
        return _answer(status, answer)

    return await run_in_threadpool(work)


def _alone(engine: Engine, batch: group.Batch) -> tuple[int, dict[str, Any]]:
    """Store one batch in a transaction of its own (when its group could not be stored together)."""
    for attempt in range(_ATTEMPTS):
        try:
            with service.one_writer(engine):
                return _store(engine, batch)
        except (IntegrityError, OperationalError) as exc:
            # Another batch stored the same message id at the same moment (or, on PostgreSQL, a deadlock
            # between two batches): the whole batch was rolled back, and a second try sees what the other kept.
            if attempt == _ATTEMPTS - 1 or not _transient(exc):
                raise
    raise AssertionError("unreachable")


_ATTEMPTS = 3


def _transient(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code in ("40P01", "40001")


def _store(engine: Engine, batch: group.Batch) -> tuple[int, dict[str, Any]]:
    session = new_session(engine)
    try:
        source = sources.authenticate(session, batch.key)
        sent_at = spec.parse_time(batch.sent, "sentAt") if batch.sent else None
        outcome = service.ingest(
            session,
            source=source,
            messages=batch.messages,
            call=batch.call,
            sent_at=sent_at,
            check_sizes=batch.check_sizes,
        )
        session.commit()
        return 200, outcome.as_dict()
    except spec.MessageError as exc:
        session.rollback()
        return 400, {"success": False, "error": str(exc), "field": exc.field}
    except KizunaError as exc:
        session.rollback()
        return exc.status_code, {"success": False, "error": exc.message, "field": exc.field}
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _route(call: str | None) -> None:
    path = f"/{call or 'batch'}"

    async def take(request: Request) -> Response:
        return await _take(request, call)

    async def preflight() -> Response:
        return Response(status_code=204, headers=_CORS)

    take.__name__ = f"tracking_{call or 'batch'}"
    take.__doc__ = f"Segment-spec {call or 'batch'} call (HTTP Basic: the write key as user, empty password)."
    router.add_api_route(path, take, methods=["POST"])
    router.add_api_route(path, preflight, methods=["OPTIONS"], include_in_schema=False)


for _call in (*spec.CALLS, None):
    _route(_call)


@snippet.get("/js/kizuna.js", include_in_schema=False)
def website_snippet() -> FileResponse:
    """The website snippet (page views, identify on form submit, consent first); served as is, no build step."""
    # Sites load it from their own pages: any origin may fetch it, and an hour of caching spares the server.
    headers = {"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"}
    return FileResponse(SNIPPET, media_type="text/javascript; charset=utf-8", headers=headers)
