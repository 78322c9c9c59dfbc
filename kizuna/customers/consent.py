"""The consent in force: the one definition every reader of consents uses (service, filters, importer, sending).

For one customer, channel and purpose, the decision in force is the last one Kizuna *recorded* (the greatest
consent id), not the one with the latest ``recorded_at``: that date is evidence a client supplies, and a
back-dated or mistyped date must never revive a consent that was withdrawn after it. Two decisions with the
same ``recorded_at`` are therefore ordered too. No decision on record means no consent (特定電子メール法 opt-in).

The rule is written once, as SQL (``_newest``); the functions below only shape it for their callers:
``status_in_force`` / ``granted`` are expressions to put in any query over many customers (a list filter, a
segment, a send to everyone who agreed), ``statuses_in_force`` answers for a batch of ids, ``has_consent`` for
one customer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, or_, select
from sqlalchemy.orm import Session, aliased

from kizuna.customers.models import Consent, Customer

GRANTED = "granted"
MARKETING = "marketing"
# Ids per statement: well under SQLite's bound-parameter limit.
_BATCH = 5000


def _newest(column: str, customer_id: Any, channel: Any, purpose: Any) -> Select[Any]:
    """``column`` of the decision in force for (customer_id, channel, purpose), as a one-row select.

    Each argument may be a value or a column of the enclosing query (the select then correlates to it). The
    consents are read through an alias so that this also correlates inside a query over ``consents`` itself.
    """
    decision = aliased(Consent)
    return (
        select(getattr(decision, column))
        .where(decision.customer_id == customer_id, decision.channel == channel, decision.purpose == purpose)
        .order_by(decision.id.desc())
        .limit(1)
    )


def status_in_force(customer_id: Any, *, channel: Any, purpose: Any = MARKETING) -> ColumnElement[Any]:
    """The status (``granted`` / ``withdrawn``) in force, or NULL when nothing was ever recorded."""
    return _newest("status", customer_id, channel, purpose).scalar_subquery()


def granted(customer_id: Any, *, channel: Any, purpose: Any = MARKETING) -> ColumnElement[bool]:
    """True for a customer whose decision in force is ``granted`` (NULL, so false, when there is none)."""
    return status_in_force(customer_id, channel=channel, purpose=purpose) == GRANTED


def not_granted(customer_id: Any, *, channel: Any, purpose: Any = MARKETING) -> ColumnElement[bool]:
    """The complement of ``granted``: withdrawn, or never asked."""
    status = status_in_force(customer_id, channel=channel, purpose=purpose)
    return or_(status.is_(None), status != GRANTED)


def in_force_ids(customer_id: Any) -> ColumnElement[bool]:
    """A condition on ``Consent`` rows: the row is the decision in force for its own channel and purpose."""
    return and_(
        Consent.customer_id == customer_id,
        Consent.id == _newest("id", Consent.customer_id, Consent.channel, Consent.purpose).scalar_subquery(),
    )


_ONE = select(status_in_force(bindparam("customer_id"), channel=bindparam("channel"), purpose=bindparam("purpose")))


def has_consent(session: Session, *, customer_id: int, channel: str, purpose: str = MARKETING) -> bool:
    """True only when the decision in force for this customer, channel and purpose is ``granted``.

    Every marketing send asks this (or ``granted`` for many customers at once).
    """
    params = {"customer_id": customer_id, "channel": channel, "purpose": purpose}
    return session.scalar(_ONE, params) == GRANTED


def statuses_in_force(
    session: Session, customer_ids: Iterable[int], *, channel: str, purpose: str = MARKETING
) -> dict[int, str]:
    """Customer id -> status in force, for those of ``customer_ids`` that have a decision on record."""
    ids = sorted(set(customer_ids))
    status = status_in_force(Customer.id, channel=channel, purpose=purpose).label("status")
    out: dict[int, str] = {}
    for start in range(0, len(ids), _BATCH):
        query = select(Customer.id, status).where(Customer.id.in_(ids[start : start + _BATCH]))
        out.update({customer_id: value for customer_id, value in session.execute(query) if value is not None})
    return out


def decisions_in_force(session: Session, customer_id: int) -> list[Consent]:
    """The decision in force for each channel and purpose the customer was ever asked about."""
    query = select(Consent).where(in_force_ids(customer_id)).order_by(Consent.channel, Consent.purpose)
    return list(session.scalars(query))
