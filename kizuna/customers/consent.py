"""The consent in force: the one definition every reader of consents uses (service, filters, importer, sending).

For one customer, channel and purpose, the decision in force is the last one Kizuna *recorded* (the greatest
consent id), not the one with the latest ``recorded_at``: that date is evidence a client supplies, and a
back-dated or mistyped date must never revive a consent that was withdrawn after it. Two decisions with the
same ``recorded_at`` are therefore ordered too. No decision on record means no consent (特定電子メール法 opt-in).

The rule is written once, as SQL (``in_force``); the functions below only shape it for their callers:
``granted`` is an expression to put in any query over many customers (a list filter, a segment, a send to
everyone who agreed), ``statuses_in_force`` answers for a batch of ids, ``has_consent`` for one customer, and
``decisions_in_force`` lists one customer's decisions in force (the 360 page, the API).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, bindparam, exists, func, select
from sqlalchemy.orm import Session, aliased

from kizuna.customers.models import Consent

GRANTED = "granted"
WITHDRAWN = "withdrawn"
MARKETING = "marketing"
# Handing customers to ad platforms (audiences): a purpose of its own, never implied by marketing consent.
ADVERTISING = "advertising"
# Ids per statement: well under SQLite's bound-parameter limit.
_BATCH = 5000


def in_force(decision: Any = Consent) -> ColumnElement[bool]:
    """The rule itself, as a condition on a consent row: no later decision for its customer, channel and purpose.

    ``decision`` is ``Consent`` or an alias of it; the later decisions are read through an alias of their own,
    so the condition correlates to whichever consent row the enclosing query is looking at.
    """
    later = aliased(Consent)
    newest = (
        select(func.max(later.id))
        .where(
            later.customer_id == decision.customer_id,
            later.channel == decision.channel,
            later.purpose == decision.purpose,
        )
        .scalar_subquery()
    )
    return decision.id == newest


def granted(customer_id: Any, *, channel: Any, purpose: Any = MARKETING) -> ColumnElement[bool]:
    """True where the decision in force is ``granted``; false when it is withdrawn or none was ever recorded.

    ``customer_id`` is a column of the enclosing query (``Customer.id``: one answer per row, for list filters,
    segments and sends to many) or a single id.
    """
    decision = aliased(Consent)
    return exists().where(
        decision.customer_id == customer_id,
        decision.channel == channel,
        decision.purpose == purpose,
        decision.status == GRANTED,
        in_force(decision),
    )


_ONE = select(granted(bindparam("customer_id"), channel=bindparam("channel"), purpose=bindparam("purpose")))


def has_consent(session: Session, *, customer_id: int, channel: str, purpose: str = MARKETING) -> bool:
    """True only when the decision in force for this customer, channel and purpose is ``granted``.

    Every marketing send asks this (or ``granted`` for many customers at once).
    """
    params = {"customer_id": customer_id, "channel": channel, "purpose": purpose}
    return bool(session.scalar(_ONE, params))


def statuses_in_force(
    session: Session, customer_ids: Iterable[int], *, channel: str, purpose: str = MARKETING
) -> dict[int, str]:
    """Customer id -> status in force, for those of ``customer_ids`` that have a decision on record."""
    ids = sorted(set(customer_ids))
    out: dict[int, str] = {}
    for start in range(0, len(ids), _BATCH):
        query = select(Consent.customer_id, Consent.status).where(
            Consent.customer_id.in_(ids[start : start + _BATCH]),
            Consent.channel == channel,
            Consent.purpose == purpose,
            in_force(),
        )
        out.update({customer_id: status for customer_id, status in session.execute(query)})
    return out


def decisions_in_force(session: Session, customer_id: int) -> list[Consent]:
    """The decision in force for each channel and purpose the customer was ever asked about."""
    query = (
        select(Consent).where(Consent.customer_id == customer_id, in_force()).order_by(Consent.channel, Consent.purpose)
    )
    return list(session.scalars(query))


def granted_for_purpose(customer_id: Any, *, purpose: str) -> ColumnElement[bool]:
    """True where a decision in force for ``purpose`` is granted on some channel and none is withdrawn.

    For purposes that are not about one channel (``advertising``: handing the customer to an ad platform), the
    decision may have been recorded under any channel the person used; a withdrawal on any of them wins, so a
    person who said no once is never included because of an older yes elsewhere.
    """
    said_no = aliased(Consent)
    withdrawn = exists().where(
        said_no.customer_id == customer_id,
        said_no.purpose == purpose,
        said_no.status != GRANTED,
        in_force(said_no),
    )
    said_yes = aliased(Consent)
    granted_somewhere = exists().where(
        said_yes.customer_id == customer_id,
        said_yes.purpose == purpose,
        said_yes.status == GRANTED,
        in_force(said_yes),
    )
    return granted_somewhere & ~withdrawn
