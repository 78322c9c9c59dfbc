"""What the sender writes while it sends a batch: each outcome in a transaction of its own, conditional on the
worker still holding the message's lease.

"Sent" is the write that matters most: it closes the window in which a crash repeats a mail, so it is one
prepared UPDATE committed right after the server's answer. On SQLite it goes straight to the driver (BEGIN
IMMEDIATE, UPDATE, COMMIT: about a third of the time the same statement takes through SQLAlchemy's execution,
measured with benchmarks/email_send.py); on PostgreSQL through Core, compiled before the first acceptance.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import time
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection

from kizuna.config import get_settings
from kizuna.db import take_write_lock, utcnow
from kizuna.messaging.channels import SendFailure, TemporaryFailure
from kizuna.messaging.models import Message

MAX_BACKOFF_SECONDS = 6 * 3600
_m = Message.__table__.c
SENT = (
    update(Message.__table__)
    .where(_m.id == bindparam("mid"), _m.locked_by == bindparam("worker"), _m.status == "sending")
    .values(
        status="sent",
        sent_at=bindparam("now"),
        address=bindparam("address"),
        customer_id=bindparam("cid"),
        locked_by=None,
        locked_until=None,
        reason=None,
        error=None,
    )
)
_SQLITE_SENT = (
    "UPDATE messages SET status = 'sent', sent_at = ?, address = ?, customer_id = ?, locked_by = NULL, "
    "locked_until = NULL, reason = NULL, error = NULL WHERE id = ? AND locked_by = ? AND status = 'sending'"
)


def failure_values(message: Message, failure: SendFailure, max_attempts: int, now: dt.datetime) -> dict[str, Any]:
    """A temporary failure with attempts left goes back to the queue with back-off; anything else fails."""
    error = str(failure)[:2000]
    if isinstance(failure, TemporaryFailure) and message.attempts < max_attempts:
        wait = min(MAX_BACKOFF_SECONDS, get_settings().send_retry_seconds * 2 ** (message.attempts - 1))
        return {
            "status": "queued",
            "due_at": now + dt.timedelta(seconds=wait),
            "reason": failure.reason,
            "error": error,
        }
    if isinstance(failure, TemporaryFailure):
        error = f"gave up after {message.attempts} attempts: {error}"
    return {"status": "failed", "reason": failure.reason, "error": error}


class Recorder:
    """The sender's writes during one batch, on one connection."""

    def __init__(self, conn: Connection, worker: str) -> None:
        self.conn = conn
        self.worker = worker
        self.sqlite = conn.dialect.name == "sqlite"
        self._stamp = _m.sent_at.type._cached_bind_processor(conn.dialect) or (lambda v: v)

    def sent(self, message_id: int, address: str | None, customer_id: int | None) -> bool:
        """The server accepted the message: record it now. False when the lease had passed to another worker."""
        now = utcnow()
        if not self.sqlite:
            params = {"mid": message_id, "worker": self.worker, "now": now, "address": address, "cid": customer_id}
            result = self.conn.execute(SENT, params)
            self.conn.commit()
            return result.rowcount == 1
        raw = self.conn.connection.dbapi_connection
        assert raw is not None
        begin_immediate(raw)
        try:
            cursor = raw.execute(_SQLITE_SENT, (self._stamp(now), address, customer_id, message_id, self.worker))
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        return cursor.rowcount == 1

    def finish(self, message_id: int, values: dict[str, Any]) -> bool:
        """Set ``values`` (a failure, a retry) on a message this worker still holds, and release it."""
        take_write_lock(self.conn)
        result = self.conn.execute(
            update(Message.__table__)
            .where(_m.id == message_id, _m.locked_by == self.worker, _m.status == "sending")
            .values(locked_by=None, locked_until=None, **values)
        )
        self.conn.commit()
        return result.rowcount == 1

    def renew(self, lease: int, *, warm: bool = False) -> set[int]:
        """Extend the lease on every message this worker is sending; returns their ids.

        ``warm``: also run the "sent" statement once on no row, so that its compilation (PostgreSQL) never falls
        between an acceptance and its record.
        """
        take_write_lock(self.conn)
        held = set(
            self.conn.scalars(
                update(Message.__table__)
                .where(_m.locked_by == self.worker, _m.status == "sending")
                .values(locked_until=utcnow() + dt.timedelta(seconds=lease))
                .returning(_m.id)
            )
        )
        self.conn.commit()
        if warm and not self.sqlite:
            self.sent(0, None, None)
        return held


def begin_immediate(raw: Any, patience: float = 120.0) -> None:
    """``kizuna.db.take_write_lock`` for a raw sqlite3 connection: retry while another writer holds the lock."""
    deadline = time.monotonic() + patience
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))
