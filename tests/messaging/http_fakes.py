"""Real local HTTP servers standing in for api.line.me and for webhook receivers, recording every request.

Each runs a ``ThreadingHTTPServer`` on a loopback port in a thread of the test process. ``FakeLine`` keeps
LINE's retry-key rule (a key accepted once answers 409 afterwards, and sends nothing) and counts what it
delivered; ``Receiver`` answers webhooks as told and keeps the raw body for signature checks.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

TOKEN = "test-channel-token-0123456789"
USER_ID = re.compile(r"U[0-9a-f]{32}")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> tuple[_Server, threading.Thread]:
    server = _Server((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@dataclass
class FakeLine:
    """The parts of the LINE Messaging API Kizuna calls."""

    token: str = TOKEN
    requests: list[Recorded] = field(default_factory=list)
    # retry key -> request id of the request that was accepted with it
    accepted: dict[str, str] = field(default_factory=dict)
    # (to, messages) per message LINE would have delivered: a user appears once per accepted push
    delivered: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    # Answers to give before handling the next requests normally (e.g. [429, 500]).
    answers: list[int] = field(default_factory=list)
    # When set: accept a push, then hold the answer until ``release`` is set (a crash window).
    hold: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)
    quota_value: int | None = 5000
    used: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def pushes(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/v2/bot/message/push"]

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> tuple[int, dict[str, str], Any]:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        record = Recorded(method, handler.path, {k.lower(): v for k, v in handler.headers.items()}, body)
        with self.lock:
            self.requests.append(record)
            forced = self.answers.pop(0) if self.answers else None
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, {"message": "Authentication failed. Confirm that the access token is valid."}
        if forced is not None:
            return forced, {}, {"message": f"forced {forced}"}
        path = handler.path
        if method == "GET" and path == "/v2/bot/message/quota":
            return 200, {}, {"type": "limited", "value": self.quota_value} if self.quota_value else {"type": "none"}
        if method == "GET" and path == "/v2/bot/message/quota/consumption":
            return 200, {}, {"totalUsage": self.used}
        if method == "GET" and path == "/v2/bot/info":
            return 200, {}, {"userId": "U" + "f" * 32, "basicId": "@kizuna", "displayName": "Kizuna"}
        link = re.fullmatch(r"/v2/bot/user/(U[0-9a-f]{32})/linkToken", path)
        if method == "POST" and link:
            return 200, {}, {"linkToken": "lt-" + uuid.uuid4().hex}
        if method == "POST" and path in ("/v2/bot/message/push", "/v2/bot/message/multicast"):
            return self._send(record, multicast=path.endswith("multicast"))
        return 404, {}, {"message": "Not found"}

    def _send(self, record: Recorded, *, multicast: bool) -> tuple[int, dict[str, str], Any]:
        key = record.headers.get("x-line-retry-key")
        payload = record.json()
        recipients = payload.get("to") if multicast else [payload.get("to")]
        if not recipients or not all(isinstance(u, str) and USER_ID.fullmatch(u) for u in recipients):
            return 400, {}, {"message": "The property, 'to', in the request body is invalid (line: -, column: -)"}
        if multicast and len(recipients) > 500:
            return 400, {}, {"message": "Size must be between 0 and 500", "details": [{"property": "to"}]}
        for number, message in enumerate(payload.get("messages") or []):
            if message.get("type") == "text" and not message.get("text"):
                return (
                    400,
                    {},
                    {
                        "message": "The request body has 1 error(s)",
                        "details": [{"message": "May not be empty", "property": f"messages[{number}].text"}],
                    },
                )
        request_id = uuid.uuid4().hex
        with self.lock:
            if key is not None and key in self.accepted:
                return (
                    409,
                    {"x-line-accepted-request-id": self.accepted[key]},
                    {"message": "The retry key is already accepted"},
                )
            if key is not None:
                self.accepted[key] = request_id
            for user in recipients:
                self.delivered.append((user, payload["messages"]))
            self.used += len(recipients)
        if self.hold.is_set():
            self.holding.set()
            self.release.wait(30)
        return 200, {"x-line-request-id": request_id}, {"sentMessages": [{"id": "1", "quoteToken": "q"}]}


def _handler_for(target: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def _answer(self, method: str) -> None:
            status, headers, body = target.handle(self, method)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client is gone (killed, or it timed out)

        def do_GET(self) -> None:  # noqa: N802
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

    return Handler


@dataclass
class Receiver:
    """A webhook receiver: answers each POST with the next of ``answers`` (else 200), after ``delay`` seconds."""

    requests: list[Recorded] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> tuple[int, dict[str, str], Any]:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append(
                Recorded(method, handler.path, {k.lower(): v for k, v in handler.headers.items()}, body)
            )
            status, headers = self.answers.pop(0) if self.answers else (200, {})
        if self.delay:
            time.sleep(self.delay)
        return status, headers, {"ok": 200 <= status < 300}

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def fake_line() -> Iterator[FakeLine]:
    line = FakeLine()
    server, thread = _serve(_handler_for(line))
    line.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield line
    line.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    target = Receiver()
    server, thread = _serve(_handler_for(target))
    target.port = server.server_address[1]
    yield target
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def receiver6() -> Iterator[Receiver]:
    """A receiver on the IPv6 loopback ([::1])."""
    import socket

    class _Server6(_Server):
        address_family = socket.AF_INET6

    target = Receiver()
    server = _Server6(("::1", 0), _handler_for(target))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    target.port = server.server_address[1]
    yield target
    server.shutdown()
    server.server_close()
    thread.join(5)


SECRET = "test-channel-secret-abcdef"


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set ``KIZUNA_*`` variables for one test: ``settings_env(line_api_base=..., ...)``; cleared afterwards."""
    from kizuna.config import get_settings

    with monkeypatch.context() as m:

        def apply(**values: Any) -> None:
            for name, value in values.items():
                m.setenv(f"KIZUNA_{name.upper()}", str(value))
            get_settings.cache_clear()

        yield apply
    get_settings.cache_clear()


@pytest.fixture
def line_env(settings_env: Any, fake_line: FakeLine) -> FakeLine:
    """The LINE channel pointed at the fake LINE server, with its token and a channel secret."""
    settings_env(line_api_base=fake_line.url, line_channel_token=TOKEN, line_channel_secret=SECRET)
    return fake_line
