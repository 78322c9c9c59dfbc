"""The chat's rate limits live in the database: a sliding minute counted with one atomic upsert on both
backends, refused requests not counted, old windows cleaned up; and two real server processes (``kizuna
serve``, each its own uvicorn) share one budget instead of each allowing the limit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from kizuna.chat.limits import ChatRateLimited, SlidingWindow, retry_after
from kizuna.chat.models import ChatRateCount
from kizuna.db import new_session
from tests.conftest import free_port


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def _rows(db: Engine) -> list[tuple[str, int, int]]:
    with new_session(db) as s:
        return [(r.key, r.window_start, r.count) for r in s.scalars(select(ChatRateCount).order_by(ChatRateCount.key))]


def test_a_sliding_minute_in_the_database(db) -> None:  # noqa: ANN001
    clock = Clock(6_000_000.0)  # the start of a window
    limit = SlidingWindow(db, "message", clock=clock)
    for _ in range(3):
        limit.hit("chat-a", 3, "chat messages")
    with pytest.raises(ChatRateLimited) as refused:
        limit.hit("chat-a", 3, "chat messages")
    assert refused.value.status_code == 429
    assert refused.value.message == "too many chat messages: at most 3 a minute; try again in 80 s"
    limit.hit("chat-b", 3, "chat messages")  # another chat has its own budget
    # The refused request gave its count back.
    assert _rows(db) == [("message:chat-a", 6_000_000, 3), ("message:chat-b", 6_000_000, 1)]
    # 15 s into the next window three quarters of the last one still count: 3 x 0.75 + 1 > 3...
    clock.at += 75
    with pytest.raises(ChatRateLimited) as refused:
        limit.hit("chat-a", 3, "chat messages")
    assert refused.value.message.endswith("try again in 5 s")
    # ... 20 s in, a third has slid out: 3 x 2/3 + 1 = 3 fits, a second one does not.
    clock.at += 5
    limit.hit("chat-a", 3, "chat messages")
    with pytest.raises(ChatRateLimited):
        limit.hit("chat-a", 3, "chat messages")
    clock.at += 25
    limit.hit("chat-a", 3, "chat messages")
    # Two windows later the first window's rows are gone (the cleanup runs once a window per process).
    clock.at += 120
    limit.hit("chat-a", 3, "chat messages")
    assert {start for _, start, _ in _rows(db)} == {6_000_000 + 180}


def test_the_wait_told_is_when_one_more_fits() -> None:
    # 3 taken this window: in the next one, once a third of these slid out (3 x 2/3 + 1 <= 3).
    assert retry_after(previous=0, current=3, limit=3, elapsed=10, window=60) == 50 + 20
    # 1 taken now, 3 in the last window, 15 s in: 3 x (1 - f) + 2 <= 3 from f = 2/3, 40 s in.
    assert retry_after(previous=3, current=1, limit=3, elapsed=15, window=60) == 25


def _serve(home: Path, db_url: str, port: int) -> subprocess.Popen:
    env = {
        "KIZUNA_HOME": str(home),
        "KIZUNA_DATABASE_URL": db_url,
        "KIZUNA_CHAT_STARTS_PER_MINUTE": "4",
        "KIZUNA_CHAT_MESSAGES_PER_MINUTE": "3",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "kizuna", "serve", "--no-worker", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.fixture
def two_servers(db, tmp_path) -> Iterator[list[str]]:  # noqa: ANN001
    url = db.url.render_as_string(hide_password=False)
    ports = [free_port(), free_port()]
    servers = [_serve(tmp_path, url, port) for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 90
        for base, server in zip(bases, servers, strict=True):
            while True:
                assert server.poll() is None, "a server ended before it answered"
                try:
                    if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the servers did not start"
                time.sleep(0.3)
        yield bases
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)


def test_two_server_processes_share_one_budget(two_servers, db) -> None:  # noqa: ANN001
    first, second = two_servers
    # Chats started from one address, alternating between the servers: 4 in all, not 4 each.
    codes = [
        httpx.post(f"{base}/chat/v1/sessions", json={"language": "ja"}, timeout=30) for base in [first, second] * 3
    ]
    assert [r.status_code for r in codes] == [201, 201, 201, 201, 429, 429]
    assert codes[4].json()["error"]["message"].startswith("too many chats started: at most 4 a minute")
    # Messages of one chat, alternating: 3 in all.
    chat = codes[0].json()
    headers = {"X-Chat-Secret": chat["secret"]}
    sent = [
        httpx.post(
            f"{base}/chat/v1/sessions/{chat['id']}/messages", json={"text": f"担当者と話したい {i}"}, headers=headers,
            timeout=60,
        ).status_code
        for i, base in enumerate([first, second, first, second])
    ]  # fmt: skip
    assert sent == [201, 201, 201, 429]
    with new_session(db) as s:
        counted = dict(
            s.execute(select(ChatRateCount.key, func.sum(ChatRateCount.count)).group_by(ChatRateCount.key)).all()
        )
    assert counted == {"start:127.0.0.1": 4, f"message:{chat['id']}": 3}
