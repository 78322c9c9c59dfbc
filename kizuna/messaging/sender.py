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
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection as DBConnection
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.config import get_settings
from kizuna.db import new_session, take_write_lock, utcnow
from kizuna.messaging import channels, gate, templates
from kizuna.messaging.channels import Outgoing, PermanentFailure, SendFailure, TemporaryFailure
from kizuna.messaging.models import Message, MessageEvent, Template
from kizuna.outbox.registry import declare_pump

log = logging.getLogger(__name__)

# Channel modules register themselves on import; LINE and webhooks add theirs here.
CHANNEL_MODULES: tuple[str, ...] = ("kizuna.messaging.email",)
MAX_BACKOFF_SECONDS = 6 * 3600


class ChannelBatch(Protocol):
    """What a channel shares over one batch (its settings read once) beside its plain ``Channel`` interface."""

    def refusal(self, message: Message) -> SendFailure | None: ...

    def variables(self, message: Message) -> dict[str, Any]: ...

    def finish(self, message: Message, address: str, content: dict[str, Any], locale: str | None) -> dict[str, Any]: ...

    def connect(self) -> AbstractContextManager[Any]: ...


def _email_batch(session: Session) -> ChannelBatch:
    from kizuna.messaging.email import EmailBatch

    return EmailBatch(session)


# Channels whose mails need more than the rendered content (footer, headers, signing): their batch setup.
BATCH_SETUPS: dict[str, Callable[[Session], ChannelBatch]] = {"email": _email_batch}


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


# --- what the sender writes --------------------------------------------------------------------------------

_SENT = (
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


def _finish(conn: DBConnection, message_id: int, worker: str, values: dict[str, Any]) -> bool:
    """Set ``values`` on a message this worker still holds, in a transaction of its own."""
    take_write_lock(conn)
    result = conn.execute(
        update(Message.__table__)
        .where(_m.id == message_id, _m.locked_by == worker, _m.status == "sending")
        .values(locked_by=None, locked_until=None, **values)
    )
    conn.commit()
    return result.rowcount == 1


def _failure_values(message: Message, failure: SendFailure, max_attempts: int, now: dt.datetime) -> dict[str, Any]:
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


# --- one batch -------------------------------------------------------------------------------------------


@dataclass
class Ready:
    message: Message
    outgoing: Outgoing
    customer_id: int | None


def send_due(engine: Engine, *, worker: str, limit: int | None = None) -> int:
    """Claim, gate, render and send one batch; returns how many messages it handled."""
    config = get_settings()
    lease = config.send_lease_seconds
    claimed = claim(engine, worker=worker, limit=limit or config.send_batch_size, lease_seconds=lease)
    if not claimed:
        return 0
    ready, setups = _prepare(engine, worker, [c.id for c in claimed], config.send_max_attempts)
    by_channel: dict[str, list[Ready]] = {}
    for r in ready:
        by_channel.setdefault(r.message.channel, []).append(r)
    if not ready:
        return len(claimed)
    with engine.connect() as conn:
        # A fresh lease for the sending (rendering took some of the first), which also says which messages are
        # still this worker's; and the "sent" statement is compiled now, not between an acceptance and its record.
        held = _renew(conn, worker, lease, warm=True)
        renewed = time.monotonic()
        for name, items in by_channel.items():
            setup = setups.get(name)
            connect = setup.connect if setup is not None else channels.get(name).connect
            with connect() as connection:
                for r in items:
                    if time.monotonic() - renewed > lease / 2:
                        held = _renew(conn, worker, lease)
                        renewed = time.monotonic()
                    if r.message.id not in held:
                        log.warning("message %s is no longer this worker's (its lease ran out): not sent", r.message.id)
                        continue
                    _send_one(conn, connection, r, worker, config.send_max_attempts)
    return len(claimed)


def _send_one(conn: DBConnection, connection: Any, r: Ready, worker: str, max_attempts: int) -> None:
    try:
        connection.send(r.outgoing)
    except SendFailure as failure:
        _finish(conn, r.message.id, worker, _failure_values(r.message, failure, max_attempts, utcnow()))
        return
    except Exception as exc:  # noqa: BLE001 - a bug in a channel is one message's temporary failure, not the batch's
        log.exception("sending message %s failed unexpectedly", r.message.id)
        failure = TemporaryFailure(f"{type(exc).__name__}: {exc}", reason="error")
        _finish(conn, r.message.id, worker, _failure_values(r.message, failure, max_attempts, utcnow()))
        return
    # Accepted: record it before anything else.
    take_write_lock(conn)
    result = conn.execute(
        _SENT,
        {"mid": r.message.id, "worker": worker, "now": utcnow(), "address": r.outgoing.address, "cid": r.customer_id},
    )
    conn.commit()
    if result.rowcount != 1:
        log.warning(
            "message %s was accepted after this worker's lease on it ran out; another sender may send it again",
            r.message.id,
        )


def _renew(conn: DBConnection, worker: str, lease: int, *, warm: bool = False) -> set[int]:
    """Extend the lease on every message this worker is sending; returns their ids."""
    take_write_lock(conn)
    held = set(
        conn.scalars(
            update(Message.__table__)
            .where(_m.locked_by == worker, _m.status == "sending")
            .values(locked_until=utcnow() + dt.timedelta(seconds=lease))
            .returning(_m.id)
        )
    )
    if warm:
        conn.execute(_SENT, {"mid": 0, "worker": worker, "now": utcnow(), "address": None, "cid": None})
    conn.commit()
    return held


def _prepare(
    engine: Engine, worker: str, ids: list[int], max_attempts: int
) -> tuple[list[Ready], dict[str, ChannelBatch]]:
    """Gate and render the claimed messages; writes every outcome that is not a send now, in one transaction."""
    session = new_session(engine)
    try:
        messages = list(session.scalars(select(Message).where(Message.id.in_(ids), Message.locked_by == worker)))
        now = utcnow()
        outcomes: list[tuple[Message, dict[str, Any]]] = []
        live: list[Message] = []
        for m in messages:
            if m.attempts > max_attempts:
                error = (
                    f"gave up after {m.attempts - 1} attempts that never reported back (worker died or lease ran out)"
                )
                outcomes.append((m, {"status": "failed", "reason": "attempts_exhausted", "error": m.error or error}))
            else:
                live.append(m)
        decisions = gate.check(session, live, worker=worker, now=now)
        delays: list[MessageEvent] = []
        sendable = [d for d in decisions if d.action == "send"]
        for d in decisions:
            if d.action == "skip":
                outcomes.append(
                    (
                        d.message,
                        {
                            "status": "skipped",
                            "reason": d.reason,
                            "error": d.detail,
                            "customer_id": d.customer_id,
                            "address": d.address,
                        },
                    )
                )
            elif d.action == "delay":
                outcomes.append(
                    (d.message, {"status": "queued", "due_at": d.until, "attempts": d.message.attempts - 1})
                )
                delays.append(
                    MessageEvent(
                        message_id=d.message.id,
                        customer_id=d.customer_id,
                        kind="delayed",
                        details={"reason": d.reason, "until": d.until.isoformat() if d.until else None},
                        occurred_at=now,
                    )
                )
        setups: dict[str, ChannelBatch] = {}
        ready = _render(session, sendable, outcomes, setups)
        # Everything above only read: SQLite's write lock is taken for the writes alone.
        take_write_lock(session.connection())
        session.add_all(delays)
        for message, values in outcomes:
            session.execute(
                update(Message.__table__)
                .where(_m.id == message.id, _m.locked_by == worker)
                .values(locked_by=None, locked_until=None, **values)
            )
        session.commit()
        return ready, setups
    finally:
        session.close()


def _render(
    session: Session,
    decisions: list[gate.Decision],
    outcomes: list[tuple[Message, dict[str, Any]]],
    setups: dict[str, ChannelBatch],
) -> list[Ready]:
    template_ids = {d.message.template_id for d in decisions if d.message.template_id is not None}
    found = (
        {t.id: t for t in session.scalars(select(Template).where(Template.id.in_(template_ids)))}
        if template_ids
        else {}
    )
    variables = templates.customer_variables(session, [d.customer_id for d in decisions if d.customer_id is not None])
    parts_of: dict[int, templates.Parts] = {}
    for d in decisions:
        m = d.message
        if m.template_id is not None and m.template_id in found:
            parts_of[m.id] = templates.Parts.of(found[m.template_id])
        elif m.content and any(k != "to" for k in m.content):
            parts_of[m.id] = templates.Parts.of(m.content)
    recs: dict[int, list[dict[str, Any]]] = {}
    wants = [
        d.customer_id for d in decisions if d.message.id in parts_of and parts_of[d.message.id].uses("recommendations")
    ]
    if wants:
        try:
            recs = templates.batch_recommendations(session, [c for c in wants if c is not None])
        except Exception:  # noqa: BLE001 - mails go out with an empty list rather than not at all
            log.exception("recommendations for %s customers could not be computed", len(wants))
    ready: list[Ready] = []
    for d in decisions:
        m = d.message
        try:
            setup = _setup(session, m.channel, setups)
            refusal = setup.refusal(m) if setup is not None else None
            if refusal is not None:
                raise refusal
            parts = parts_of.get(m.id)
            if parts is None:
                raise PermanentFailure("the message has no content (its template was deleted?)", reason="no_content")
            own = variables.get(d.customer_id) if d.customer_id is not None else None
            values: dict[str, Any] = {
                **(own or templates.sample_variables()),
                "context": m.context or {},
                "recommendations": templates.recommendations_for(recs.get(d.customer_id or 0, [])),
                "message": {"id": m.id, "source": m.source, "source_id": m.source_id, "variant": m.variant},
                "unsubscribe_url": "",
                "sender": {},
            }
            if setup is not None:
                values.update(setup.variables(m))
            content = templates.render(parts, values)
            assert d.address is not None
            rendered = setup.finish(m, d.address, content, d.locale) if setup is not None else content
        except templates.RenderError as exc:
            outcomes.append(
                (m, {"status": "failed", "reason": "render_error", "error": exc.message, "customer_id": d.customer_id})
            )
            continue
        except PermanentFailure as exc:
            outcomes.append(
                (m, {"status": "failed", "reason": exc.reason, "error": str(exc), "customer_id": d.customer_id})
            )
            continue
        outgoing = Outgoing(
            message_id=m.id,
            delivery_key=m.delivery_key,
            customer_id=d.customer_id,
            kind=m.kind,
            address=d.address,
            rendered=rendered,
            attempt=m.attempts,
        )
        ready.append(Ready(message=m, outgoing=outgoing, customer_id=d.customer_id))
    return ready


def _setup(session: Session, channel: str, setups: dict[str, ChannelBatch]) -> ChannelBatch | None:
    if channel not in BATCH_SETUPS:
        return None
    if channel not in setups:
        setups[channel] = BATCH_SETUPS[channel](session)
    return setups[channel]
