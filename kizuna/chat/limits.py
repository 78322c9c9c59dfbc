"""Rate limits of the public chat API (a sliding minute per chat and per address), shared by every process.

The counts live in the database (``chat_rate_limits``: key, window start, count), so ``kizuna serve --workers
2`` or several servers behind one balancer allow one budget, not one each. A hit is one atomic upsert
(``INSERT ... ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count``, on SQLite and PostgreSQL alike)
in a transaction of its own, committed at once: a request that fails later still counted, as it did in memory.

The minute slides as a two-window counter: the current fixed minute's count plus the previous minute's count
weighted by how much of it still lies within the last 60 s. A refused request gives its count back, so a
flood does not push the visitor's own next message further out (as the in-memory deques never counted it).
The estimate is the usual two-window one: after a full burst the next request fits a little later than an
exact log of timestamps would allow (80 s instead of 60 s after ``limit`` requests at once), never earlier
than the limit allows on average.
Windows older than the previous one are deleted, at most once a window per process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from kizuna.chat.models import ChatRateCount
from kizuna.db import take_write_lock
from kizuna.errors import KizunaError


class ChatRateLimited(KizunaError):
    status_code = 429
    code = "rate_limited"


def retry_after(previous: int, current: int, limit: int, elapsed: float, window: float) -> int:
    """Seconds until one more request fits, given the previous window's and this window's accepted counts."""
    if current + 1 <= limit:
        # Within this window, once enough of the previous one has slid out.
        share = 1 - (limit - current - 1) / previous if previous else 0.0
        return max(1, math.ceil(round(share * window - elapsed, 6)))
    # Only in the next window, where this one's count is the one that slides out.
    share = 1 - (limit - 1) / current if current else 0.0
    return max(1, math.ceil(round(window - elapsed + max(0.0, share) * window, 6)))


class SlidingWindow:
    """One limit (chat messages, chat starts) counted in the database under keys starting with ``prefix``."""

    def __init__(self, engine: Engine, prefix: str, window: int = 60, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.prefix = prefix
        self.window = window
        self.clock = clock
        self._swept = 0

    def _upsert(self, key: str, start: int):  # noqa: ANN202 - a dialect's insert statement
        table = ChatRateCount.__table__
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table).values(key=key, window_start=start, count=1)
        return statement.on_conflict_do_update(
            index_elements=[table.c.key, table.c.window_start], set_={"count": table.c.count + 1}
        ).returning(table.c.count)

    def hit(self, key: str, limit: int, what: str) -> None:
        """Count one request for ``key``; refuse it when ``limit`` were already made within the last window."""
        now = self.clock()
        start = int(now // self.window) * self.window
        elapsed = now - start
        table = ChatRateCount.__table__
        name = f"{self.prefix}:{key}"[:200]
        with self.engine.begin() as conn:
            take_write_lock(conn)
            current = conn.execute(self._upsert(name, start)).scalar_one()
            previous = (
                conn.execute(
                    select(table.c.count).where(table.c.key == name, table.c.window_start == start - self.window)
                ).scalar_one_or_none()
                or 0
            )
            estimate = previous * (1 - elapsed / self.window) + current
            if estimate > limit + 1e-9:  # not refused by a float's last bit
                conn.execute(
                    update(table)
                    .where(table.c.key == name, table.c.window_start == start)
                    .values(count=table.c.count - 1)
                )
                wait = retry_after(previous, current - 1, limit, elapsed, self.window)
                raise ChatRateLimited(f"too many {what}: at most {limit} a minute; try again in {wait} s")
        if self._swept < start:
            self._swept = start
            with self.engine.begin() as conn:
                conn.execute(delete(table).where(table.c.window_start < start - self.window))


class ChatLimits:
    """The limits of one app (``app.state.chat_limits``): messages per chat, chats started per address."""

    def __init__(self, engine: Engine) -> None:
        self.messages = SlidingWindow(engine, "message")
        self.starts = SlidingWindow(engine, "start")
