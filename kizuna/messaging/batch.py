"""A claimed batch made ready to send: gated at once, the outcomes that are known before sending written in one
transaction, and a render job for each message that goes out.

A job renders in two steps (the template's content, then the channel's finish: footer, tracking, MIME, DKIM), so
the sender can run them while an SMTP server works on other mails, instead of after them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.db import new_session, take_write_lock, utcnow
from kizuna.messaging import gate, templates
from kizuna.messaging.channels import Outgoing, PermanentFailure, SendFailure
from kizuna.messaging.models import Message, MessageEvent, Template

log = logging.getLogger(__name__)
_m = Message.__table__.c


class ChannelBatch(Protocol):
    """What a channel shares over one batch (its settings read once) beside its plain ``Channel`` interface."""

    def refusal(self, message: Message) -> SendFailure | None:
        """Why this message may not go out at all (sender identity missing ...), before anything is rendered."""
        ...

    def variables(self, message: Message) -> dict[str, Any]:
        """What the channel adds to a template's variables (sender, unsubscribe_url)."""
        ...

    def finish(self, message: Message, address: str, content: dict[str, Any], locale: str | None) -> dict[str, Any]:
        """The rendered content made ready for the wire (``Outgoing.rendered``)."""
        ...

    def connect(self) -> AbstractContextManager[Any]:
        """One connection that can be driven a step at a time (``start``, ``waiting``, ``fileno``, ``advance``,
        ``send_body``, ``fail_waiting``: see ``messaging/smtp.py``); the sender opens a few."""
        ...


def _email_batch(session: Session) -> ChannelBatch:
    from kizuna.messaging.email import EmailBatch

    return EmailBatch(session)


# Channels whose messages need more than the rendered content (footer, headers, signing): their batch setup.
BATCH_SETUPS: dict[str, Callable[[Session], ChannelBatch]] = {"email": _email_batch}


@dataclass
class Item:
    """One message that passed the gate, with everything its rendering needs."""

    message: Message
    customer_id: int | None
    address: str
    locale: str | None
    parts: templates.Parts
    values: dict[str, Any]
    setup: ChannelBatch | None


class Job:
    """Renders one item in two steps; afterwards ``outgoing`` is set, or ``failure`` (reason, detail)."""

    def __init__(self, item: Item) -> None:
        self.item = item
        self.outgoing: Outgoing | None = None
        self.failure: tuple[str, str] | None = None
        self.done = False
        self._steps = self._run()

    def step(self) -> None:
        if not self.done:
            try:
                next(self._steps)
            except StopIteration:
                self.done = True

    def complete(self) -> None:
        while not self.done:
            self.step()

    def _run(self) -> Iterator[None]:
        item, m = self.item, self.item.message
        try:
            content = templates.render(item.parts, item.values)
            yield
            rendered = item.setup.finish(m, item.address, content, item.locale) if item.setup else content
        except templates.RenderError as exc:
            self.failure = ("render_error", exc.message)
            return
        except PermanentFailure as exc:
            self.failure = (exc.reason, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a bug met by one message fails that message, not the batch
            log.exception("rendering message %s failed", m.id)
            self.failure = ("render_error", f"{type(exc).__name__}: {exc}")
            return
        self.outgoing = Outgoing(
            message_id=m.id,
            delivery_key=m.delivery_key,
            customer_id=item.customer_id,
            kind=m.kind,
            address=item.address,
            rendered=rendered,
            attempt=m.attempts,
            extra={"first_attempt_at": m.first_attempt_at} if m.first_attempt_at is not None else {},
        )


def prepare(
    engine: Engine, worker: str, ids: list[int], max_attempts: int
) -> tuple[list[Item], dict[str, ChannelBatch]]:
    """Gate the claimed messages and write every outcome that is not a send now, in one transaction."""
    session = new_session(engine)
    try:
        messages = list(session.scalars(select(Message).where(Message.id.in_(ids), Message.locked_by == worker)))
        now = utcnow()
        outcomes: list[tuple[Message, dict[str, Any]]] = []
        events: list[MessageEvent] = []
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
        for d in decisions:
            if d.action == "skip":
                values = {"status": "skipped", "reason": d.reason, "error": d.detail, "customer_id": d.customer_id}
                outcomes.append((d.message, {**values, "address": d.address}))
            elif d.action == "delay":
                outcomes.append(
                    (d.message, {"status": "queued", "due_at": d.until, "attempts": d.message.attempts - 1})
                )
                details = {"reason": d.reason, "until": d.until.isoformat() if d.until else None}
                events.append(
                    MessageEvent(
                        message_id=d.message.id,
                        customer_id=d.customer_id,
                        kind="delayed",
                        details=details,
                        occurred_at=now,
                    )
                )
        setups: dict[str, ChannelBatch] = {}
        items = _items(session, [d for d in decisions if d.action == "send"], outcomes, setups)
        # Everything above only read: SQLite's write lock is taken for the writes alone.
        take_write_lock(session.connection())
        session.add_all(events)
        for message, values in outcomes:
            session.execute(
                update(Message.__table__)
                .where(_m.id == message.id, _m.locked_by == worker)
                .values(locked_by=None, locked_until=None, **values)
            )
        session.commit()
        return items, setups
    finally:
        session.close()


def _items(
    session: Session,
    decisions: list[gate.Decision],
    outcomes: list[tuple[Message, dict[str, Any]]],
    setups: dict[str, ChannelBatch],
) -> list[Item]:
    template_ids = {d.message.template_id for d in decisions if d.message.template_id is not None}
    found = (
        {t.id: t for t in session.scalars(select(Template).where(Template.id.in_(template_ids)))}
        if template_ids
        else {}
    )
    variables = templates.customer_variables(session, [d.customer_id for d in decisions if d.customer_id is not None])
    of_template = {tid: templates.Parts.of(t) for tid, t in found.items()}
    parts_of: dict[int, templates.Parts] = {}
    for d in decisions:
        m = d.message
        if m.template_id is not None and m.template_id in of_template:
            parts_of[m.id] = of_template[m.template_id]
        elif m.content and any(k != "to" for k in m.content):
            parts_of[m.id] = templates.Parts.of(m.content)
    wants = {id(p): p.uses("recommendations") for p in parts_of.values()}
    recs = _recommendations(session, [d.customer_id for d in decisions if wants.get(id(parts_of.get(d.message.id)))])
    surveys = _survey_links(session, parts_of.values())
    items: list[Item] = []
    for d in decisions:
        m = d.message
        setup = _setup(session, m.channel, setups)
        refusal = setup.refusal(m) if setup is not None else None
        parts = parts_of.get(m.id)
        if refusal is None and parts is None:
            refusal = PermanentFailure("the message has no content (its template was deleted?)", reason="no_content")
        if refusal is not None:
            outcomes.append(
                (m, {"status": "failed", "reason": refusal.reason, "error": str(refusal), "customer_id": d.customer_id})
            )
            continue
        assert parts is not None and d.address is not None
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
        if surveys is not None:
            values["nps_links"] = surveys.for_message(m, d.customer_id)
        items.append(Item(m, d.customer_id, d.address, d.locale, parts, values, setup))
    return items


def _recommendations(session: Session, customer_ids: list[int | None]) -> dict[int, list[dict[str, Any]]]:
    wanted = [c for c in customer_ids if c is not None]
    if not wanted:
        return {}
    try:
        return templates.batch_recommendations(session, wanted)
    except Exception:  # noqa: BLE001 - mails go out with an empty list rather than not at all
        log.exception("recommendations for %s customers could not be computed", len(wanted))
        return {}


def _survey_links(session: Session, parts: Iterable[templates.Parts]) -> Any:
    """``nps_links`` for the messages of this batch, when a template of the batch calls it (surveys read once)."""
    if not any(p.uses("nps_links") for p in parts):
        return None
    from kizuna.surveys.links import BatchLinks

    return BatchLinks.read(session)


def _setup(session: Session, channel: str, setups: dict[str, ChannelBatch]) -> ChannelBatch | None:
    if channel not in BATCH_SETUPS:
        return None
    if channel not in setups:
        setups[channel] = BATCH_SETUPS[channel](session)
    return setups[channel]
