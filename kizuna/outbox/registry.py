"""Subscribers: the code that reacts to outbox topics, declared once and loaded by every process at start.

The rule for what a subscriber sees: a message gets one delivery per subscriber declared in the code of the
process that emits it, written in the same transaction as the message. ``kizuna serve``, ``kizuna worker``,
the CLI and imports all load the same modules (``SUBSCRIBER_MODULES`` plus ``KIZUNA_EXTRA_SUBSCRIBERS``)
before their first emit, so a subscriber sees every message emitted after the release that declares it,
and none from before (a journey published today must not replay last year's orders).
"""

from __future__ import annotations

import datetime as dt
import importlib
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from kizuna.config import get_settings

# Built-in subscriber modules; each declares its subscribers at import. Later capabilities add theirs here
# (journeys, webhooks, ...), so that nothing depends on which module happened to be imported first.
SUBSCRIBER_MODULES: tuple[str, ...] = (
    "kizuna.imports.subscribers",
    "kizuna.customers.duplicate_scan",
    "kizuna.analytics.subscribers",
    "kizuna.segments.schedule",
    "kizuna.campaigns.schedule",
    "kizuna.journeys.subscribers",
    "kizuna.messaging.sender",
    "kizuna.privacy.retention",
    "kizuna.webhooks.delivery",
    "kizuna.ingest.retention",
    "kizuna.sales.reminders",
    "kizuna.sales.scoring.schedule",
    "kizuna.inquiries.imap",
)


class GiveUp(Exception):  # noqa: N818 - it names what the outbox does with the delivery
    """Raised by a handler or effect when no retry can succeed (a receiver that refused the request itself): the
    delivery goes dead at once, with this message as its last error, and an admin may retry it by hand."""


_KEY_NAMESPACE = uuid.UUID("6f1c1a52-4b8e-4d7a-9a51-6b697a756e61")


@dataclass(frozen=True)
class Delivery:
    """What a handler is given: the message, which delivery this is, and the key that makes repeats visible."""

    id: int
    message_id: int
    topic: str
    payload: dict[str, Any]
    customer_id: int | None
    origin: str
    occurred_at: dt.datetime
    subscriber: str
    target: str
    attempt: int
    # The worker holding the lease: a long handler renews it with ``service.renew_lease``.
    worker: str = ""
    # What the subscriber's ``effect`` returned for this attempt (see ``Subscriber.effect``), else None.
    effect: Any = None

    @property
    def key(self) -> str:
        """Idempotency key for outside effects: fixed when the message was written, the same on every retry."""
        base = f"kizuna-{self.message_id}-{self.subscriber}"
        return f"{base}-{self.target}" if self.target else base

    @property
    def key_uuid(self) -> uuid.UUID:
        """The key as a UUID, for APIs that want one (LINE's ``X-Line-Retry-Key``)."""
        return uuid.uuid5(_KEY_NAMESPACE, self.key)


class Handler(Protocol):
    def __call__(self, session: Session, delivery: Delivery) -> None: ...


class BatchHandler(Protocol):
    """A batch subscriber's handler: many deliveries of one subscriber, handled in one transaction."""

    def __call__(self, session: Session, deliveries: list[Delivery]) -> None: ...


class Targets(Protocol):
    def __call__(self, session: Session, delivery: Delivery) -> Iterable[str]: ...


class Listening(Protocol):
    """Whether a subscriber configured at run time has anything to do with ``topic`` now (see ``Subscriber``)."""

    def __call__(self, session: Session, topic: str) -> bool: ...


class Effect(Protocol):
    """The outside part of a target's delivery (an HTTP call), run with no transaction open; see ``Subscriber``."""

    def __call__(self, engine: Any, delivery: Delivery) -> Any: ...


@dataclass(frozen=True)
class Subscriber:
    """Reacts to ``topics`` (exact names, ``prefix.*`` or ``*``).

    With ``targets`` the subscriber fans out: its own delivery lists the targets configured at run time (the
    webhooks subscribed to the topic, the journeys it triggers ...) and each target gets a delivery of its own,
    handled by ``handle`` with ``delivery.target`` set, so one failing target retries alone.

    With ``batch`` (above 0) ``handle`` is a ``BatchHandler``: it gets up to ``batch`` deliveries at once,
    handled in one transaction and marked done together; when that transaction fails, each delivery is handled
    again alone (a list of one), so one bad delivery retries alone and the rest go through.

    With ``effect`` (fan-out subscribers only) each target delivery first runs ``effect(engine, delivery)`` with
    no transaction open and no lock held, so that a slow receiver never holds SQLite's one write lock (nor a row
    lock) while it thinks; the lease still keeps other workers off the delivery. It may read through a session
    of its own and must not change anything ``handle`` would; an exception is the attempt's failure (retried
    with back-off). What it returns reaches ``handle`` as ``delivery.effect``, in the transaction that marks
    the delivery done, so what the effect caused is recorded once.

    With ``listening``, a message gets a delivery for this subscriber only when ``listening(session, topic)``
    says so in the emitting transaction: a subscriber whose targets are configured at run time (webhook
    subscriptions) costs nothing while none is configured for the topic. Targets configured later see the
    messages emitted after them, as the rule above says of subscribers declared later.
    """

    name: str
    topics: frozenset[str]
    handle: Handler | BatchHandler
    targets: Targets | None = None
    max_attempts: int | None = None  # None: KIZUNA_OUTBOX_MAX_ATTEMPTS
    declared_in: str = field(default="", compare=False)
    batch: int = 0
    effect: Effect | None = None
    listening: Listening | None = None

    def wants(self, topic: str) -> bool:
        if "*" in self.topics or topic in self.topics:
            return True
        return any(t.endswith(".*") and topic.startswith(t[:-1]) for t in self.topics)


class Pump(Protocol):
    """Work a worker does besides outbox deliveries, in batches it claims itself (the sender, the journey engine).

    Called with the engine and the worker's name; returns how many items it handled, 0 when nothing was due (a
    worker sleeps only when every pump and the outbox had nothing to do).
    """

    def __call__(self, engine: Any, worker: str) -> int: ...


_PUMPS: dict[str, Pump] = {}
_SUBSCRIBERS: dict[str, Subscriber] = {}
_LOADED = False
_LOCK = threading.Lock()


def declare(
    name: str,
    *topics: str,
    targets: Targets | None = None,
    max_attempts: int | None = None,
    effect: Effect | None = None,
    listening: Listening | None = None,
) -> Callable[[Handler], Handler]:
    """Decorator for a module-level handler: ``@declare("webhooks", "customer.*", targets=...)``."""

    def wrap(handle: Handler) -> Handler:
        register(
            Subscriber(
                name=name,
                topics=frozenset(topics),
                handle=handle,
                targets=targets,
                max_attempts=max_attempts,
                declared_in=getattr(handle, "__module__", ""),
                effect=effect,
                listening=listening,
            )
        )
        return handle

    return wrap


def declare_batch(
    name: str, *topics: str, batch: int = 500, max_attempts: int | None = None
) -> Callable[[BatchHandler], BatchHandler]:
    """Decorator for a handler of many deliveries at once: ``@declare_batch("journeys", "x", batch=500)``."""

    def wrap(handle: BatchHandler) -> BatchHandler:
        register(
            Subscriber(
                name=name,
                topics=frozenset(topics),
                handle=handle,
                max_attempts=max_attempts,
                declared_in=getattr(handle, "__module__", ""),
                batch=batch,
            )
        )
        return handle

    return wrap


def register(subscriber: Subscriber) -> None:
    if not subscriber.topics:
        raise ValueError(f"subscriber {subscriber.name!r} names no topic")
    if subscriber.batch and subscriber.targets is not None:
        raise ValueError(f"subscriber {subscriber.name!r}: a batch subscriber cannot fan out to targets")
    if subscriber.effect is not None and subscriber.targets is None:
        raise ValueError(f"subscriber {subscriber.name!r}: an effect runs for targets; declare targets too")
    known = _SUBSCRIBERS.get(subscriber.name)
    if known is not None and known != subscriber:
        where = f"{known.declared_in}, {subscriber.declared_in}"
        raise ValueError(f"two subscribers are named {subscriber.name!r} ({where})")
    _SUBSCRIBERS[subscriber.name] = subscriber


def declare_pump(name: str) -> Callable[[Pump], Pump]:
    """Decorator for a module-level pump, declared in one of the subscriber modules so every worker loads it."""

    def wrap(pump: Pump) -> Pump:
        known = _PUMPS.get(name)
        if known is not None and known is not pump:
            raise ValueError(f"two pumps are named {name!r}")
        _PUMPS[name] = pump
        return pump

    return wrap


def pumps() -> list[tuple[str, Pump]]:
    load()
    return sorted(_PUMPS.items())


def unregister(name: str) -> None:
    """Forget a subscriber (tests); its existing deliveries stay and are reported as having no handler."""
    _SUBSCRIBERS.pop(name, None)


def load() -> None:
    """Import every subscriber module once per process."""
    global _LOADED
    if _LOADED:
        return
    with _LOCK:
        if _LOADED:
            return
        extra = [m.strip() for m in get_settings().extra_subscribers.split(",") if m.strip()]
        for module in (*SUBSCRIBER_MODULES, *extra):
            importlib.import_module(module)
        _LOADED = True


def subscribers() -> list[Subscriber]:
    load()
    return sorted(_SUBSCRIBERS.values(), key=lambda s: s.name)


def for_topic(topic: str, session: Session | None = None) -> list[Subscriber]:
    """The subscribers of ``topic``; with ``session``, only those ``listening`` to it now."""
    found = [s for s in subscribers() if s.wants(topic)]
    if session is None:
        return found
    return [s for s in found if s.listening is None or s.listening(session, topic)]


def get(name: str) -> Subscriber | None:
    load()
    return _SUBSCRIBERS.get(name)
