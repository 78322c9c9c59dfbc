"""CORS for the public chat API: only the sites an admin allowed (``chat_origins``) may call it from a page.

A middleware rather than per-route headers, so that errors (404, 413, 422, 429) carry the header too and the
widget can show them. The allowed list is read from the database at most every few seconds, and again (at
most twice a second) when an origin is not in it: a site an admin just allowed in another process, or with the
CLI, works at once instead of being refused until the cache ages out.
"""

from __future__ import annotations

import json
import math
import time

from sqlalchemy import select
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kizuna.chat.models import ChatOrigin
from kizuna.db import new_session

PREFIX = "/chat/v1/"
CACHE_SECONDS = 5.0
MISS_SECONDS = 0.5


# Database URL -> (when read, allowed origins).
_cached: dict[str, tuple[float, set[str]]] = {}


def forget() -> None:
    """Re-read the allowed sites on the next request (after an admin changed them in this process)."""
    _cached.clear()


def _allowed(scope: Scope, origin: str) -> bool:
    engine = scope["app"].state.engine
    key = str(engine.url)
    at, origins = _cached.get(key, (-math.inf, set()))
    age = time.monotonic() - at
    if age > CACHE_SECONDS or (origin not in origins and age > MISS_SECONDS):
        with new_session(engine) as session:
            origins = set(session.scalars(select(ChatOrigin.origin)))
        _cached[key] = (time.monotonic(), origins)
    return origin in origins


class ChatCORS:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        host = headers.get("host", "")
        if not origin or origin in (f"http://{host}", f"https://{host}"):
            await self.app(scope, receive, send)
            return
        if not _allowed(scope, origin):
            await _json(send, 403, {"error": {"code": "forbidden", "field": None, "message": (
                f"the site {origin} may not use this chat (an admin allows it under Chats > Sites)")}})  # fmt: skip
            return
        cors = [
            (b"access-control-allow-origin", origin.encode()),
            (b"vary", b"Origin"),
        ]
        if scope["method"] == "OPTIONS":
            cors += [
                (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                (b"access-control-allow-headers", b"Content-Type, X-Chat-Secret"),
                (b"access-control-max-age", b"600"),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": cors})
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + cors}
            await send(message)

        await self.app(scope, receive, with_cors)


async def _json(send: Send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
