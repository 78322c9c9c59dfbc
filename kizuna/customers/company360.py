"""The company page: a company, its contacts and what they did, read once for the UI page and the API alike."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kizuna.auth import service as auth
from kizuna.auth.permissions import Actor, require
from kizuna.customers import service
from kizuna.customers.filters import CUSTOMER_FILTERS
from kizuna.customers.models import Customer
from kizuna.customers.schemas import Company360, CompanyRead, ContactActivity, ContactBrief
from kizuna.customers.summary import spend_reads
from kizuna.customers.timeline import last_activity_at, latest_of_many
from kizuna.listing import list_page
from kizuna.orders.spend import spend_totals

CONTACTS_PAGE = 50
ACTIVITY_SHOWN = 20
READS = ("companies:read", "customers:read", "orders:read", "notes:read")


def contacts_of(company_id: int):  # noqa: ANN201 - a select of ids
    """The ids of the company's contacts: its active customers (merged records live on in their survivor)."""
    return select(Customer.id).where(Customer.company_id == company_id, Customer.status == "active")


def count_contacts(session: Session, company_id: int) -> int:
    """How many contacts the company has (what deleting it would unlink)."""
    return session.scalar(select(func.count()).select_from(contacts_of(company_id).subquery())) or 0


def company_360(
    session: Session,
    *,
    actor: Actor,
    company_id: int,
    contacts_cursor: str | None = None,
    contacts_limit: int = CONTACTS_PAGE,
    activity_limit: int = ACTIVITY_SHOWN,
) -> Company360:
    """The company page of ``company_id``: attributes, a page of contacts (by name) with each one's last activity,
    the contacts' spend by the one definition (orders/spend.py) and their newest touchpoints merged."""
    for permission in READS:
        require(actor, permission)
    company = service.get_company(session, company_id)
    contacts, next_cursor = list_page(
        session,
        CUSTOMER_FILTERS,
        CUSTOMER_FILTERS.select(),
        {"company_id": company.id},
        sort="full_name",
        cursor=contacts_cursor,
        limit=contacts_limit,
    )
    last = last_activity_at(session, [c.id for c in contacts])
    count = count_contacts(session, company.id)
    totals = spend_totals(session, company_id=company.id)
    activity = latest_of_many(session, contacts_of(company.id), limit=activity_limit)
    names = dict(
        session.execute(select(Customer.id, Customer.full_name).where(Customer.id.in_({cid for cid, _ in activity})))
        .tuples()
        .all()
    )
    owner_name = auth.user_names(session, {company.owner_id}).get(company.owner_id) if company.owner_id else None
    return Company360(
        company=CompanyRead.model_validate(company),
        owner_name=owner_name,
        contact_count=count,
        contacts=[
            ContactBrief.model_validate(c).model_copy(update={"last_activity_at": last.get(c.id)}) for c in contacts
        ],
        contacts_next_cursor=next_cursor,
        currency=totals[0].currency if totals else None,
        lifetime_revenue=totals[0].amount if totals else Decimal(0),
        order_count=sum(t.orders for t in totals),
        revenue_by_currency=spend_reads(totals),
        recent_activity=[
            ContactActivity(customer_id=cid, customer_name=names.get(cid, ""), item=item) for cid, item in activity
        ],
    )
