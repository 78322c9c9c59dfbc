"""Duplicate pairs: two customers that may be one person, proposed by hints and decided by a person."""

from __future__ import annotations

from sqlalchemy import insert, or_, select, tuple_
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.customers.models import DuplicatePair
from kizuna.db import utcnow
from kizuna.errors import Conflict, NotFound

# ``propose_many`` reads every known pair, instead of looking them up, when it is given more than this many.
READ_ALL_KNOWN = 10_000


def propose(session: Session, customer_id: int, other_id: int, reason: str) -> DuplicatePair | None:
    """Record that two customers may be one person; nothing when the pair is known (open, dismissed or merged)."""
    if customer_id == other_id:
        return None
    low, high = sorted((customer_id, other_id))
    known = session.scalar(
        select(DuplicatePair).where(DuplicatePair.customer_id == low, DuplicatePair.other_customer_id == high)
    )
    if known is not None:
        return None
    pair = DuplicatePair(customer_id=low, other_customer_id=high, reason=reason[:200])
    session.add(pair)
    return pair


def propose_all(session: Session, customer_id: int, others: list[int], reason: str) -> int:
    session.flush()
    return sum(1 for other in others if propose(session, customer_id, other, reason) is not None)


def propose_many(session: Session, pairs: set[tuple[int, int, str]]) -> int:
    """``propose`` for a bulk path: (customer, other, reason) triples, known pairs left alone; returns how many."""
    wanted: dict[tuple[int, int], str] = {}
    for a, b, reason in sorted(pairs):
        if a != b:
            wanted.setdefault((min(a, b), max(a, b)), reason[:200])
    if not wanted:
        return 0
    known: set[tuple[int, int]] = set()
    keys = sorted(wanted)
    if len(keys) > READ_ALL_KNOWN:
        # A duplicate scan proposes tens of thousands at once: reading every known pair (the table holds only
        # proposed pairs) is then cheaper than the look-ups by (id, id), 2,000 at a time.
        known.update(
            (a, b) for a, b in session.execute(select(DuplicatePair.customer_id, DuplicatePair.other_customer_id))
        )
        keys = []
    for start in range(0, len(keys), 2000):
        chunk = keys[start : start + 2000]
        query = select(DuplicatePair.customer_id, DuplicatePair.other_customer_id).where(
            tuple_(DuplicatePair.customer_id, DuplicatePair.other_customer_id).in_(chunk)
        )
        known.update((a, b) for a, b in session.execute(query))
    new = [
        {"customer_id": a, "other_customer_id": b, "reason": reason, "status": "open", "created_at": utcnow()}
        for (a, b), reason in wanted.items()
        if (a, b) not in known
    ]
    for start in range(0, len(new), 5000):
        session.execute(insert(DuplicatePair.__table__), new[start : start + 5000])
    return len(new)


def list_pairs(session: Session, *, actor: Actor, status: str = "open", limit: int = 100) -> list[DuplicatePair]:
    require(actor, "customers:read")
    return list(
        session.scalars(
            select(DuplicatePair).where(DuplicatePair.status == status).order_by(DuplicatePair.id).limit(limit)
        )
    )


def pairs_of(session: Session, customer_id: int) -> list[DuplicatePair]:
    """Open pairs a customer is in (for the 360 page's "may be the same person as")."""
    return list(
        session.scalars(
            select(DuplicatePair)
            .where(
                DuplicatePair.status == "open",
                or_(DuplicatePair.customer_id == customer_id, DuplicatePair.other_customer_id == customer_id),
            )
            .order_by(DuplicatePair.id)
        )
    )


def dismiss(session: Session, *, actor: Actor, pair_id: int) -> DuplicatePair:
    """Not the same person: the pair is closed and never proposed again."""
    require(actor, "customers:merge")
    pair = session.get(DuplicatePair, pair_id)
    if pair is None:
        raise NotFound(f"duplicate pair {pair_id} not found")
    if pair.status != "open":
        raise Conflict(f"duplicate pair {pair_id} is already {pair.status}")
    pair.status, pair.decided_at, pair.decided_by = "dismissed", utcnow(), actor.label
    audit.record(
        session,
        actor=actor,
        action="duplicate.dismiss",
        entity_type="duplicate_pair",
        entity_id=pair.id,
        customer_id=pair.customer_id,
        details={"customer_id": pair.customer_id, "other_customer_id": pair.other_customer_id},
    )
    return pair


def after_merge(session: Session, *, actor: Actor, survivor_id: int, merged_id: int) -> None:
    """The pair of the two is closed as merged; the merged record's other open pairs pass to the survivor."""
    pairs = session.scalars(
        select(DuplicatePair).where(
            or_(DuplicatePair.customer_id == merged_id, DuplicatePair.other_customer_id == merged_id)
        )
    ).all()
    for pair in pairs:
        other = pair.other_customer_id if pair.customer_id == merged_id else pair.customer_id
        if pair.status == "open":
            pair.status, pair.decided_at, pair.decided_by = "merged", utcnow(), actor.label
            if other != survivor_id:
                propose(session, survivor_id, other, pair.reason)
