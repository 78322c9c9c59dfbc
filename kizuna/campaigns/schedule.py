"""The worker's side of campaigns: launch the due ones, pick A/B winners when the test ends, pause on complaints
and mark finished ones sent. A pump (run after each outbox batch) that looks at most every few seconds."""

from __future__ import annotations

import logging
import math
import time

from sqlalchemy.engine import Engine

from kizuna.auth.permissions import Actor
from kizuna.campaigns import service
from kizuna.db import new_session, take_write_lock
from kizuna.outbox.registry import declare_pump

log = logging.getLogger(__name__)
# The campaigns table is small, but a worker polls every second: once every few seconds is fresh enough for a
# scheduled send and spares SQLite's single writer.
INTERVAL_SECONDS = 5.0
_last_look = -math.inf  # never: the monotonic clock starts near 0 at boot


def _in_transaction(engine: Engine, campaign_id: int, step: str) -> object:
    session = new_session(engine)
    try:
        take_write_lock(session.connection())
        actor = Actor.system("campaigns", origin="worker")
        result = getattr(service, step)(session, campaign_id, actor=actor)
        session.commit()
        return result
    except Exception:
        session.rollback()
        log.exception("campaign %s: %s failed; it stays due and is tried again", campaign_id, step)
        return None
    finally:
        session.close()


def tick(engine: Engine, *, force: bool = False) -> int:
    """One look at the campaigns; returns how many actions were taken."""
    global _last_look
    now = time.monotonic()
    if not force and now - _last_look < INTERVAL_SECONDS:
        return 0
    _last_look = now
    session = new_session(engine)
    try:
        due = service.due(session)
    finally:
        session.close()
    done = 0
    for campaign_id in due.launch:
        done += bool(_in_transaction(engine, campaign_id, "launch"))
    for campaign_id in due.decide:
        done += bool(_in_transaction(engine, campaign_id, "decide"))
    for campaign_id in due.watch:
        done += bool(_in_transaction(engine, campaign_id, "watch"))
    return done


@declare_pump("campaigns.scheduler")
def campaigns_pump(engine: Engine, worker: str) -> int:
    return tick(engine)
