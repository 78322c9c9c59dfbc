"""Subscribers for the outbox tests, loaded into real ``kizuna worker`` processes via KIZUNA_EXTRA_SUBSCRIBERS.

Each handling writes one audit row (a database effect, which must happen exactly once per delivery) and, when
the message names a URL, POSTs to it with the delivery's key (an outside effect, at least once per key).
"""

from __future__ import annotations

import os
import time

import httpx
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor
from kizuna.outbox.registry import Delivery, Subscriber, register

ACTOR = Actor.system("probe")


def handle(session: Session, delivery: Delivery) -> None:
    url = delivery.payload.get("url")
    if url:
        httpx.post(url, headers={"Idempotency-Key": delivery.key}, json={"worker": os.getpid()}, timeout=10)
    time.sleep(float(delivery.payload.get("sleep", 0)))
    if delivery.payload.get("fail_target") == delivery.target and delivery.target:
        raise RuntimeError(f"target {delivery.target} is down")
    audit.record(
        session,
        actor=ACTOR,
        action="probe.handled",
        entity_type="outbox_probe",
        entity_id=delivery.key,
        details={"worker": os.getpid(), "attempt": delivery.attempt, "origin": delivery.origin},
    )


def fan_targets(session: Session, delivery: Delivery) -> list[str]:
    return list(delivery.payload.get("targets", []))


SUBSCRIBERS = [
    Subscriber(name="probe-a", topics=frozenset({"probe.*"}), handle=handle, declared_in=__name__),
    Subscriber(name="probe-b", topics=frozenset({"probe.ping"}), handle=handle, declared_in=__name__),
    Subscriber(
        name="probe-fan", topics=frozenset({"probe.ping"}), handle=handle, targets=fan_targets, declared_in=__name__
    ),
]

for _subscriber in SUBSCRIBERS:
    register(_subscriber)
