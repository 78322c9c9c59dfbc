"""Group commit for the tracking API: the batches that arrive while one transaction commits share the next one.

A commit costs the same whether it carries 100 events or 800 (on SQLite the WAL append and, every so often, a
checkpoint; on PostgreSQL the WAL flush), and one commit per request of 100 events capped the rate near the bare
driver's own rate with a commit per batch (2,400-5,400 rows/s on SQLite here). So requests of one process queue
here; whichever finds nobody writing becomes the writer, takes every batch queued so far, stores them in one
transaction, commits, and only then answers each of them. Nothing is answered before it is committed, so an SDK
that sees 200 can forget the batch, as before.

A batch whose write key is wrong, or whose ``sentAt`` is unreadable, is answered on its own and writes nothing.
If storing the group fails in a way one batch may have caused (two processes storing the same message id at
once), the group is rolled back and each batch is stored alone as before, so one batch never costs the others.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from kizuna.db import new_session
from kizuna.errors import KizunaError
from kizuna.ingest import service, sources, spec


@dataclass
class Batch:
    """One request's messages, as the API parsed them."""

    key: str | None
    messages: list[Any]
    call: str | None
    sent: object
    check_sizes: bool
    # What to answer: (status, body), set once the group is committed (or the batch is refused).
    answer: tuple[int, dict[str, Any]] | None = None
    error: BaseException | None = None
    done: bool = False
    outcome: service.Outcome | None = field(default=None, repr=False)


Alone = Callable[[Batch], tuple[int, dict[str, Any]]]


class GroupCommit:
    """The queue of one engine's tracking batches and the one writer that drains it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cond = threading.Condition()
        self._queue: list[Batch] = []
        self._writing = False

    def store(self, batch: Batch, alone: Alone) -> tuple[int, dict[str, Any]]:
        """Store ``batch`` with whatever else is queued; block until it is committed; return (status, body)."""
        with self._cond:
            self._queue.append(batch)
            while not batch.done and self._writing:
                self._cond.wait()
            if batch.done:
                return self._result(batch)
            self._writing = True
            group, self._queue = self._queue, []
        try:
            self._write(group, alone)
        finally:
            with self._cond:
                for member in group:
                    if not member.done:  # an error escaped _write: nobody may wait forever
                        member.error = member.error or RuntimeError("the tracking batch was not stored")
                        member.done = True
                self._writing = False
                self._cond.notify_all()
        return self._result(batch)

    @staticmethod
    def _result(batch: Batch) -> tuple[int, dict[str, Any]]:
        if batch.error is not None:
            raise batch.error
        assert batch.answer is not None
        return batch.answer

    def _write(self, group: list[Batch], alone: Alone) -> None:
        with service.one_writer(self.engine):
            session = new_session(self.engine)
            stored: list[Batch] = []
            try:
                # The group's batches by source (nearly always one), each source's stored with one statement of
                # each kind (``service.ingest_many``).
                by_source: dict[int, tuple[sources.KnownSource, list[Batch], list[service.Incoming]]] = {}
                for batch in group:
                    try:
                        source = sources.authenticate(session, batch.key)
                        sent_at = spec.parse_time(batch.sent, "sentAt") if batch.sent else None
                    except spec.MessageError as exc:
                        batch.answer = (400, {"success": False, "error": str(exc), "field": exc.field})
                        continue
                    except KizunaError as exc:
                        batch.answer = (exc.status_code, {"success": False, "error": exc.message, "field": exc.field})
                        continue
                    _, batches, incoming = by_source.setdefault(source.id, (source, [], []))
                    batches.append(batch)
                    incoming.append(service.Incoming(batch.messages, batch.call, sent_at, batch.check_sizes))
                for source, batches, incoming in by_source.values():
                    outcomes = service.ingest_many(session, source=source, incoming=incoming)
                    for batch, outcome in zip(batches, outcomes, strict=True):
                        batch.outcome = outcome
                        stored.append(batch)
                session.commit()
            except Exception:  # noqa: BLE001 - any batch may be the cause: each is stored alone below
                session.rollback()
                stored = []
                failed = True
            else:
                failed = False
            finally:
                session.close()
        for batch in stored:
            assert batch.outcome is not None
            batch.answer = (200, batch.outcome.as_dict())
        if failed:
            for batch in group:
                if batch.answer is None:
                    try:
                        batch.answer = alone(batch)
                    except BaseException as exc:  # noqa: BLE001 - handed to the request that sent it
                        batch.error = exc
        for batch in group:
            batch.done = True


_GROUPS: weakref.WeakKeyDictionary[Engine, GroupCommit] = weakref.WeakKeyDictionary()
_GROUPS_LOCK = threading.Lock()


def for_engine(engine: Engine) -> GroupCommit:
    """The engine's group commit (one per engine and process)."""
    with _GROUPS_LOCK:
        group = _GROUPS.get(engine)
        if group is None:
            group = _GROUPS[engine] = GroupCommit(engine)
        return group
