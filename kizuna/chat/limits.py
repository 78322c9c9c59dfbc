"""Per-process rate limits of the public chat API (a sliding minute per chat and per address).

Kept in memory: the chat is for a site's visitors, and one Kizuna process counting its own requests is
enough to stop a script flooding the bot or the agents' queue; several processes each allow the limit.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from kizuna.errors import KizunaError


class ChatRateLimited(KizunaError):
    status_code = 429
    code = "rate_limited"


class SlidingWindow:
    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, what: str) -> None:
        """Count one request for ``key``; refuse it when ``limit`` were already made within the window."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] > self.window:
                hits.popleft()
            if len(hits) >= limit:
                wait = int(self.window - (now - hits[0])) + 1
                raise ChatRateLimited(f"too many {what}: at most {limit} a minute; try again in {wait} s")
            hits.append(now)
            if len(self._hits) > 100_000:  # forget idle keys so a scan of addresses cannot grow memory forever
                for stale in [k for k, v in self._hits.items() if not v or now - v[-1] > self.window]:
                    del self._hits[stale]


class ChatLimits:
    """The limits of one app (``app.state.chat_limits``): messages per chat, chats started per address."""

    def __init__(self) -> None:
        self.messages = SlidingWindow()
        self.starts = SlidingWindow()
