"""What the worker does for journeys: the outbox subscribers (triggers and goals, the hourly scan) and the
engine pump. Listed in ``outbox.registry.SUBSCRIBER_MODULES`` so every process declares them."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.journeys import engine as journey_engine
from kizuna.journeys import scans, triggers
from kizuna.outbox.registry import Delivery, declare, declare_batch, declare_pump

# Many deliveries per transaction: a segment refresh that lets 100,000 customers in writes 100,000 messages.
BATCH = 500


@declare_batch("journeys", *triggers.TOPICS, batch=BATCH)
def on_messages(session: Session, deliveries: list[Delivery]) -> None:
    """Enrol the customers the messages trigger, then count the goals they reach."""
    occurrences = triggers.occurrences(session, deliveries)
    triggers.enter(session, occurrences)
    triggers.convert(session, occurrences)


@declare(scans.SUBSCRIBER, scans.TOPIC)
def on_scan(session: Session, delivery: Delivery) -> None:
    """Scan, and queue the next scan while a live journey needs one (publishing or resuming one starts it again)."""
    scans.scan(session)
    if scans.wanted(session):
        scans.ensure_scheduled(session, exclude_delivery=delivery.id)


@declare_pump("journeys.engine")
def engine_pump(engine: Engine, worker: str) -> int:
    return journey_engine.run_pass(engine, worker)
