"""The sender: a worker pump that claims due messages, gates and renders them, and sends each over one connection
per channel per batch, recording "sent" the moment the receiving server has accepted it.

What "once" means here, per message (never per batch):

- The claim leases a batch (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's write lock only for the claim):
  status ``sending``, ``locked_by`` this worker, ``locked_until`` the lease, one attempt counted.
- Right after the server's answer the sender commits ``sent`` in a transaction of its own, one UPDATE, before it
  does anything else. The one window no sender can close alone is a worker dying between the server's
  acceptance and that commit: its message is still ``sending`` when the lease runs out, another sender
  recovers it (logged, and recorded as a ``recovered`` event: it may already have been accepted) and sends it
  again under the same Message-ID, so that receivers and tests recognise the repeat.
- A temporary failure (SMTP 4xx, refused connection, timeout) goes back to ``queued`` with back-off; a permanent
  one (5xx) is ``failed`` with the server's words; attempts used up is ``failed`` too, never silence.
- One message failing (render error, refusal) is recorded on that message; the others of the batch go on.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from kizuna.config import get_settings
from kizuna.db import new_session, take_write_lock, utcnow
from kizuna.messaging import channels
from kizuna.messaging.batch import Job, prepare
from kizuna.messaging.channels import SendFailure, TemporaryFailure
from kizuna.messaging.models import Message, MessageEvent
from kizuna.messaging.record import Recorder, failure_values
from kizuna.outbox.registry import declare_pump

log = logging.getLogger(__name__)

# Channel modules register themselves on import; LINE and webhooks add theirs here.
CHANNEL_MODULES: tuple[str, ...] = ("kizuna.messaging.email", "kizuna.messaging.line", "kizuna.messaging.webhook")
_m = Message.__table__.c


def _load_channels() -> list[str]:
    for module in CHANNEL_MODULES:
        importlib.import_module(module)
    return sorted(c.name for c in channels.all_channels())


@declare_pump("messaging.sender")
def pump(engine: Engine, worker: str) -> int:
    """One batch of due messages; how many were handled (0 when none was due)."""
    return send_due(engine, worker=worker)


@dataclass
class Claimed:
    id: int
    recovered_from: str | None  # the worker whose lease ran out, for a recovered message


_m = Message.__table__.c


def claim(engine: Engine, *, worker: str, limit: int, lease_seconds: int) -> list[Claimed]:
    """Lease up to ``limit`` due messages (queued and due, or sending with a lapsed lease) to ``worker``."""
    names = _load_channels()
    now = utcnow()
    queued = (
        select(_m.id, _m.status, _m.locked_by)
        .where(_m.status == "queued", _m.due_at <= now, _m.channel.in_(names))
        .order_by(_m.due_at, _m.id)
        .limit(limit)
    )
    lapsed = (
        select(_m.id, _m.status, _m.locked_by)
        .where(_m.status == "sending", _m.locked_until < now, _m.channel.in_(names))
        .order_by(_m.locked_until, _m.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        # Look before taking the write lock: an idle sender must not compete for SQLite's one writer.
        if conn.execute(queued.limit(1)).first() is None and conn.execute(lapsed.limit(1)).first() is None:
            conn.rollback()
            return []
        conn.rollback()
        take_write_lock(conn)
        if conn.dialect.name != "sqlite":
            queued, lapsed = queued.with_for_update(skip_locked=True), lapsed.with_for_update(skip_locked=True)
        rows = list(conn.execute(lapsed)) + list(conn.execute(queued))
        rows = rows[:limit]
        if not rows:
            conn.rollback()
            return []
        ids = [r.id for r in rows]
        conn.execute(
            update(Message.__table__)
            .where(_m.id.in_(ids))
            .values(
                status="sending",
                locked_by=worker,
                locked_until=now + dt.timedelta(seconds=lease_seconds),
                attempts=_m.attempts + 1,
            )
        )
        claimed = [Claimed(r.id, (r.locked_by or "?") if r.status == "sending" else None) for r in rows]
        recovered = [c for c in claimed if c.recovered_from is not None]
        if recovered:
            conn.execute(
                MessageEvent.__table__.insert(),
                [
                    {
                        "message_id": c.id,
                        "kind": "recovered",
                        "details": {"previous_worker": c.recovered_from},
                        "occurred_at": now,
                    }
                    for c in recovered
                ],
            )
        conn.commit()
    for c in recovered:
        log.warning(
            "recovered message %s from worker %s whose lease ran out: it may already have been accepted; "
            "sending it again under the same Message-ID",
            c.id,
            c.recovered_from,
        )
    return claimed


# --- one batch -------------------------------------------------------------------------------------------


def send_due(engine: Engine, *, worker: str, limit: int | None = None) -> int:
    """Claim, gate, render and send one batch; returns how many messages it handled."""
    config = get_settings()
    lease = config.send_lease_seconds
    claimed = claim(engine, worker=worker, limit=limit or config.send_batch_size, lease_seconds=lease)
    if not claimed:
        return 0
    items, setups = prepare(engine, worker, [c.id for c in claimed], config.send_max_attempts)
    by_channel: dict[str, list[Job]] = {}
    for item in items:
        by_channel.setdefault(item.message.channel, []).append(Job(item))
    if not items:
        return len(claimed)
    with engine.connect() as conn:
        recorder = Recorder(conn, worker)
        # A fresh lease for the sending (gating took some of the first), which also says which messages are
        # still this worker's.
        held = recorder.renew(lease, warm=True)
        renewed = time.monotonic()
        for name, jobs in by_channel.items():
            setup = setups.get(name)
            with setup.connect() if setup is not None else _connect(engine, name) as connection:
                sending = _Sending(recorder, setup, connection, config.send_max_attempts)
                for n, job in enumerate(jobs):
                    m = job.item.message
                    if time.monotonic() - renewed > lease / 2:
                        sending.flush()
                        held = recorder.renew(lease)
                        renewed = time.monotonic()
                    if not job.done:
                        sending.flush()  # an acceptance is recorded before any rendering
                        job.complete()
                    if m.id not in held:
                        sending.flush()
                        log.warning("message %s is no longer this worker's (its lease ran out): not sent", m.id)
                        continue
                    if job.failure is not None:
                        sending.flush()
                        reason, error = job.failure
                        recorder.finish(m.id, {"status": "failed", "reason": reason, "error": error})
                        continue
                    # The next message renders while the server works on this one's envelope.
                    sending.send(job, jobs[n + 1].step if n + 1 < len(jobs) else None)
                sending.flush()
    return len(claimed)


@contextmanager
def _connect(engine: Engine, name: str) -> Iterator[Any]:
    """A channel's connection with its stored settings read from the sender's own database."""
    with new_session(engine) as session, channels.get(name).connect(session) as connection:
        yield connection


class _Sending:
    """Sends a channel's messages of a batch one after the other over its connection, recording each outcome.

    An acceptance is recorded right after the server's answer. With a channel that can start a send before it
    needs the previous answer recorded (SMTP: the next MAIL FROM is a few bytes on the wire), the record is
    committed while the server works on that command; nothing else comes first, and never more than one
    accepted message is unrecorded at a time.
    """

    def __init__(self, recorder: Recorder, setup: Any, connection: Any, max_attempts: int) -> None:
        self.recorder, self.setup, self.connection, self.max_attempts = recorder, setup, connection, max_attempts
        self._accepted: Job | None = None

    def flush(self) -> None:
        """Record the last acceptance, if not yet recorded."""
        job, self._accepted = self._accepted, None
        if job is not None and job.outgoing is not None:
            m = job.item.message
            if not self.recorder.sent(m.id, job.outgoing.address, job.item.customer_id):
                log.warning(
                    "message %s was accepted after this worker's lease on it ran out; another sender may send it again",
                    m.id,
                )

    def send(self, job: Job, meanwhile: Any) -> None:
        m, outgoing = job.item.message, job.outgoing
        assert outgoing is not None
        try:
            try:
                if self.setup is not None:
                    self.setup.begin_send(self.connection, outgoing)
            finally:
                self.flush()
            if self.setup is not None:
                self.setup.complete_send(self.connection, outgoing, meanwhile)
            else:
                self.connection.send(outgoing)
        except SendFailure as failure:
            self.recorder.finish(m.id, failure_values(m, failure, self.max_attempts, utcnow()))
            return
        except Exception as exc:  # noqa: BLE001 - a bug in a channel is one message's temporary failure
            log.exception("sending message %s failed unexpectedly", m.id)
            failure = TemporaryFailure(f"{type(exc).__name__}: {exc}", reason="error")
            self.recorder.finish(m.id, failure_values(m, failure, self.max_attempts, utcnow()))
            return
        self._accepted = job
