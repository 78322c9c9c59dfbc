from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class KeyCounter:
    """A real HTTP receiver that counts every POST by its Idempotency-Key, repeats included."""

    def __init__(self) -> None:
        self.raw: Counter[str] = Counter()
        self.lock = threading.Lock()
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with counter.lock:
                    counter.raw[self.headers.get("Idempotency-Key", "")] += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    @property
    def repeats(self) -> int:
        return sum(n - 1 for n in self.raw.values())


@pytest.fixture
def receiver() -> Iterator[KeyCounter]:
    counter = KeyCounter()
    thread = threading.Thread(target=counter.server.serve_forever, daemon=True)
    thread.start()
    yield counter
    counter.server.shutdown()
    counter.server.server_close()
