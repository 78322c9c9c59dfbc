"""The customer 360: everything known about one person, read once for the UI page and the API alike."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from kizuna.auth import service as auth
from kizuna.auth.permissions import Actor, require
from kizuna.catalog import service as catalog
from kizuna.customers import duplicates, identities, service
from kizuna.customers.merge import merged_ids
from kizuna.customers.models import Note
from kizuna.customers.schemas import (
    CompanyBrief,
    ConsentRead,
    Customer360,
    CustomerRead,
    DuplicatePairRead,
    IdentityRead,
    NoteWithAuthor,
    OrderBrief,
)
from kizuna.customers.summary import customer_summary
from kizuna.customers.timeline import timeline
from kizuna.orders import service as orders
from kizuna.orders.models import Order
from kizuna.privacy import service as privacy
from kizuna.privacy.schemas import ProvisionRead

ORDERS_SHOWN = 20
TIMELINE_PAGE = 50
# The page shows orders, notes and consents beside the customer, so it needs each of their reads.
READS = ("customers:read", "orders:read", "notes:read", "consents:read")


def customer_360(
    session: Session,
    *,
    actor: Actor,
    customer_id: int,
    timeline_cursor: str | None = None,
    timeline_limit: int = TIMELINE_PAGE,
    timeline_kinds: Sequence[str] | None = None,
) -> Customer360:
    """The 360 of ``customer_id`` (a merged id reads its survivor; ``customer.id`` says which one was read).

    ``timeline_kinds`` narrows the timeline to those kinds (all when empty); pass the same kinds with the cursor.
    """
    for permission in READS:
        require(actor, permission)
    customer = service.get_customer(session, customer_id)
    items, next_cursor = timeline(
        session, customer.id, limit=timeline_limit, cursor=timeline_cursor, kinds=timeline_kinds
    )
    recent = orders.recent_orders(session, customer.id, limit=ORDERS_SHOWN)
    products = catalog.product_names(session, {line.product_id for o in recent for line in o.lines if line.product_id})
    notes = service.list_notes(session, customer.id)
    people = auth.user_names(
        session, {n.author_user_id for n in notes if n.author_user_id} | {customer.owner_id} - {None}
    )
    owner_name = people.get(customer.owner_id) if customer.owner_id else None
    consents = service.current_consents(session, customer.id)
    provisions, provisions_total = privacy.customer_provisions(session, actor=actor, customer_id=customer.id)
    return Customer360(
        customer=CustomerRead.model_validate(customer),
        summary=customer_summary(session, customer.id, owner_name=owner_name, consents=consents),
        company=CompanyBrief.model_validate(customer.company) if customer.company else None,
        owner_name=owner_name,
        merged_ids=merged_ids(session, customer.id),
        consents=[ConsentRead.model_validate(c) for c in consents],
        identities=[IdentityRead.model_validate(i) for i in identities.list_identities(session, customer.id)],
        duplicates=[DuplicatePairRead.model_validate(p) for p in duplicates.pairs_of(session, customer.id)],
        orders=[_order(o, products) for o in recent],
        notes=[_note(n, people) for n in notes],
        timeline=items,
        timeline_next_cursor=next_cursor,
        provisions=[ProvisionRead.model_validate(p) for p in provisions],
        provisions_total=provisions_total,
    )


def _order(order: Order, products: dict[int, str]) -> OrderBrief:
    brief = OrderBrief.model_validate(order)
    for line in brief.lines:
        line.product_name = products.get(line.product_id) if line.product_id else None
    return brief


def _note(note: Note, people: dict[int, str]) -> NoteWithAuthor:
    brief = NoteWithAuthor.model_validate(note)
    brief.author_name = people.get(note.author_user_id) if note.author_user_id else None
    return brief
