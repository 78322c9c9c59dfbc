"""The customer summary: the few figures a person reads first on the 360 page (and the API's 360 read).

Revenue is spend by the definition the analytics use (``orders/spend.py``), so the 360 page, the company page
and RFM / deciles / CLV never disagree about what a customer paid.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.analytics.models import CustomerMetrics, MetricRun
from kizuna.auth import service as auth
from kizuna.customers import consent, service
from kizuna.customers.models import Consent
from kizuna.customers.schemas import Channel, CustomerMetricsRead, CustomerSummary, SpendRead
from kizuna.customers.timeline import ACTIVITY_KINDS, timeline
from kizuna.orders.spend import SpendTotal, spend_totals

CHANNELS: tuple[str, ...] = Channel.__args__  # type: ignore[attr-defined]
NO_DECISION = "none"


def spend_reads(totals: list[SpendTotal]) -> list[SpendRead]:
    return [
        SpendRead(currency=t.currency, amount=t.amount, orders=t.orders, average_order_value=t.average) for t in totals
    ]


def customer_summary(
    session: Session,
    customer_id: int,
    *,
    owner_name: str | None = None,
    consents: Sequence[Consent] | None = None,
) -> CustomerSummary:
    """The summary of ``customer_id`` (a merged id reads its survivor); the caller checks the permissions
    (customers, orders, notes, consents: ``customer360.READS``).

    ``owner_name`` and ``consents`` (the customer's decisions in force, ``consent.decisions_in_force``) save
    queries when the caller has read them already, as the 360 read has.
    """
    customer = service.get_customer(session, customer_id)
    totals = spend_totals(session, customer_ids=[customer.id])
    main = totals[0] if totals else None
    latest, _ = timeline(session, customer.id, limit=1, kinds=ACTIVITY_KINDS)
    if customer.owner_id and owner_name is None:
        owner_name = auth.user_names(session, {customer.owner_id}).get(customer.owner_id)
    # One statement for every channel (the rule in force is consent.py's): six statuses_in_force calls cost
    # ~28 ms on PostgreSQL under load, this one ~2 ms.
    if consents is None:
        consents = consent.decisions_in_force(session, customer.id)
    marketing = {c.channel: c.status for c in consents if c.purpose == consent.MARKETING}
    in_force = {channel: marketing.get(channel, NO_DECISION) for channel in CHANNELS}
    metrics = session.get(CustomerMetrics, customer.id)
    firsts = [t.first_order_at for t in totals if t.first_order_at]
    lasts = [t.last_order_at for t in totals if t.last_order_at]
    return CustomerSummary(
        currency=main.currency if main else None,
        lifetime_revenue=main.amount if main else Decimal(0),
        order_count=sum(t.orders for t in totals),
        average_order_value=main.average if main else None,
        revenue_by_currency=spend_reads(totals),
        first_order_at=min(firsts) if firsts else None,
        last_order_at=max(lasts) if lasts else None,
        last_activity=latest[0] if latest else None,
        owner_id=customer.owner_id,
        owner_name=owner_name if customer.owner_id else None,
        consent=in_force,
        metrics=_metrics(session, metrics) if metrics else None,
    )


def _metrics(session: Session, row: CustomerMetrics) -> CustomerMetricsRead:
    read = CustomerMetricsRead.model_validate(row)
    last = session.scalar(
        select(MetricRun.finished_at).where(MetricRun.kind == "scores").order_by(MetricRun.id.desc()).limit(1)
    )
    return read.model_copy(update={"checked_at": last})
