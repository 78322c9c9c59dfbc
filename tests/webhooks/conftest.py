"""Real local receivers (``tests/messaging/http_fakes.py``) and helpers for outgoing webhooks on domain events."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.messaging import webhook_admin
from kizuna.outbox import worker
from kizuna.webhooks import service
from tests.messaging.http_fakes import Receiver, receiver, settings_env  # noqa: F401 - fixtures

__all__ = ["Receiver"]


def drain(engine: Engine, rounds: int = 5) -> worker.Tally:
    """Run the worker until nothing is due (fan-out, then the targets)."""
    total = worker.Tally()
    for _ in range(rounds):
        tally = worker.run_once(engine)
        total.done += tally.done
        total.failed += tally.failed
        total.dead += tally.dead
        total.errors += tally.errors
        if not (tally.done or tally.failed or tally.dead):
            break
    return total


def subscribe(
    session: Session, admin: Actor, url: str, events: list[str], *, name: str = "crm-sync", **options: Any
) -> tuple[int, str]:
    """An endpoint at ``url`` subscribed to ``events``; its id and signing secret (committed)."""
    endpoint, secret = webhook_admin.create_endpoint(session, actor=admin, name=name, url=url)
    service.create_subscription(session, actor=admin, endpoint_id=endpoint.id, events=events, **options)
    session.commit()
    return endpoint.id, secret


@pytest.fixture
def allow_loopback(settings_env):  # noqa: ANN001, ANN201, F811
    settings_env(webhook_allow="127.0.0.1,::1")
