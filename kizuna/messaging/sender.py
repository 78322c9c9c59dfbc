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
import select as io_select
import time
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import func, select, update
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
                first_attempt_at=func.coalesce(_m.first_attempt_at, now),
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
        kept = _Lease(recorder, lease)
        for name, jobs in by_channel.items():
            outcome = _Outcome(recorder, kept, config.send_max_attempts)
            setup = setups.get(name)
            if setup is not None:
                _Lanes(outcome, setup, config.smtp_connections, config.smtp_timeout_seconds).run(jobs)
            else:
                with _connect(engine, name) as connection:
                    for job in jobs:
                        kept.keep()
                        job.complete()
                        if outcome.sendable(job):
                            outcome.send_plain(connection, job)
    return len(claimed)


@contextmanager
def _connect(engine: Engine, name: str) -> Iterator[Any]:
    """A channel's connection with its stored settings read from the sender's own database."""
    with new_session(engine) as session, channels.get(name).connect(session) as connection:
        yield connection


class _Lease:
    """The lease on this worker's messages, renewed when half of it has passed."""

    def __init__(self, recorder: Recorder, seconds: int) -> None:
        self.recorder, self.seconds = recorder, seconds
        self.held = recorder.renew(seconds, warm=True)
        self.renewed = time.monotonic()

    def keep(self) -> None:
        if time.monotonic() - self.renewed > self.seconds / 2:
            self.held = self.recorder.renew(self.seconds)
            self.renewed = time.monotonic()


class _Outcome:
    """Writes what became of each message of a batch, the moment it is known."""

    def __init__(self, recorder: Recorder, lease: _Lease, max_attempts: int) -> None:
        self.recorder, self.lease, self.max_attempts = recorder, lease, max_attempts

    def sendable(self, job: Job) -> bool:
        """Whether a rendered job may go out; a render failure is recorded here."""
        m = job.item.message
        if m.id not in self.lease.held:
            log.warning("message %s is no longer this worker's (its lease ran out): not sent", m.id)
            return False
        if job.failure is not None:
            reason, error = job.failure
            self.recorder.finish(m.id, {"status": "failed", "reason": reason, "error": error})
            return False
        return True

    def sent(self, job: Job) -> None:
        m, outgoing = job.item.message, job.outgoing
        assert outgoing is not None
        if not self.recorder.sent(m.id, outgoing.address, job.item.customer_id):
            log.warning(
                "message %s was accepted after this worker's lease on it ran out; another sender may send it again",
                m.id,
            )

    def failed(self, job: Job, failure: SendFailure) -> None:
        m = job.item.message
        self.recorder.finish(m.id, failure_values(m, failure, self.max_attempts, utcnow()))

    def broke(self, job: Job, exc: Exception) -> None:
        """A bug in a channel is one message's temporary failure."""
        log.error("sending message %s failed unexpectedly", job.item.message.id, exc_info=exc)
        self.failed(job, TemporaryFailure(f"{type(exc).__name__}: {exc}", reason="error"))

    def send_plain(self, connection: Any, job: Job) -> None:
        """Send over a channel that answers each message in one call (LINE, webhooks)."""
        try:
            connection.send(job.outgoing)
        except SendFailure as failure:
            self.failed(job, failure)
            return
        except Exception as exc:  # noqa: BLE001 - see broke()
            self.broke(job, exc)
            return
        self.sent(job)


class _Lanes:
    """Sends a channel's messages over a few connections driven a step at a time (see ``messaging/smtp.py``).

    While the server works on one connection's command, the sender writes the next command on another, or
    renders the mails to come. Only one connection hands over a mail at a time, and its acceptance is recorded
    before anything else is done, so at most one accepted mail is ever unrecorded (the window a SIGKILL can fall
    in).
    """

    def __init__(self, outcome: _Outcome, setup: Any, connections: int, timeout: float) -> None:
        self.outcome, self.setup, self.connections, self.timeout = outcome, setup, connections, timeout

    def run(self, jobs: list[Job]) -> None:
        pending = deque(jobs)
        with ExitStack() as stack:
            lanes = [stack.enter_context(self.setup.connect()) for _ in range(min(self.connections, len(jobs)))]
            in_hand: dict[int, Job] = {}
            while True:
                self.outcome.lease.keep()
                self._hand_over(lanes, in_hand)
                self._start(lanes, in_hand, pending)
                if not in_hand:
                    return
                waiting = [n for n, lane in enumerate(lanes) if lane.waiting]
                ready = self._ready(lanes, waiting, 0)
                if not ready:
                    if self._render_ahead(pending) or not waiting:
                        continue
                    ready = self._ready(lanes, waiting, self.timeout)
                    if not ready:
                        for n in waiting:
                            self.outcome.failed(in_hand.pop(n), lanes[n].fail_waiting())
                        continue
                # An acceptance first: it is recorded before any other answer is read.
                ready.sort(key=lambda n: lanes[n].stage != "mail_data")
                for n in ready:
                    self._advance(lanes[n], n, in_hand)

    @staticmethod
    def _ready(lanes: list[Any], waiting: list[int], timeout: float) -> list[int]:
        if not waiting:
            return []
        readable = io_select.select([lanes[n] for n in waiting], [], [], timeout)[0]
        return [n for n in waiting if lanes[n] in readable]

    def _hand_over(self, lanes: list[Any], in_hand: dict[int, Job]) -> None:
        """Write one mail whose server said 354, unless another mail is being handed over."""
        if any(lane.stage == "mail_data" for lane in lanes):
            return
        for n, lane in enumerate(lanes):
            if lane.stage == "body":
                job = in_hand[n]
                try:
                    lane.send_body(job.outgoing)
                except SendFailure as failure:
                    self.outcome.failed(in_hand.pop(n), failure)
                    continue
                return

    def _start(self, lanes: list[Any], in_hand: dict[int, Job], pending: deque[Job]) -> None:
        for n, lane in enumerate(lanes):
            while n not in in_hand and pending:
                job = pending.popleft()
                job.complete()
                if not self.outcome.sendable(job):
                    continue
                try:
                    lane.start(job.outgoing)
                except SendFailure as failure:
                    self.outcome.failed(job, failure)
                    continue
                except Exception as exc:  # noqa: BLE001 - see _Outcome.broke()
                    self.outcome.broke(job, exc)
                    continue
                in_hand[n] = job

    def _advance(self, lane: Any, n: int, in_hand: dict[int, Job]) -> None:
        job = in_hand[n]
        try:
            accepted = lane.advance(job.outgoing)
        except SendFailure as failure:
            self.outcome.failed(in_hand.pop(n), failure)
            return
        except Exception as exc:  # noqa: BLE001 - see _Outcome.broke(); the connection's state is unknown
            lane.fail_waiting()
            self.outcome.broke(in_hand.pop(n), exc)
            return
        if accepted:
            self.outcome.sent(in_hand.pop(n))

    @staticmethod
    def _render_ahead(pending: deque[Job]) -> bool:
        """One rendering step of a mail to come, while the servers work; False when all are rendered."""
        for job in islice(pending, 4):
            if not job.done:
                job.step()
                return True
        return False
