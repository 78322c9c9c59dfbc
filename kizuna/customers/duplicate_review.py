"""The duplicate review: open pairs a page at a time, two customers side by side, and the merge a person decides.

The pages read through these functions only (one call per page), and the merge goes through
``merge.merge_customers`` with the values the person picked, so the API's merge and the UI's are one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from kizuna.auth import service as auth
from kizuna.auth.permissions import Actor, require
from kizuna.customers import merge
from kizuna.customers.models import Customer, DuplicatePair
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.orders import service as orders

PAGE_SIZE = 50


@dataclass(frozen=True)
class PairRow:
    pair: DuplicatePair
    first: Customer
    second: Customer


@dataclass(frozen=True)
class PairPage:
    rows: list[PairRow]
    total: int
    page: int
    pages: int


def open_pairs(session: Session, *, actor: Actor, page: int = 1, per_page: int = PAGE_SIZE) -> PairPage:
    """Open pairs, oldest first, with both customers; ``page`` counts from 1 (past the end: the last page)."""
    require(actor, "customers:read")
    total = session.scalar(select(func.count()).select_from(DuplicatePair).where(DuplicatePair.status == "open")) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    first, second = aliased(Customer), aliased(Customer)
    query = (
        select(DuplicatePair, first, second)
        .join(first, first.id == DuplicatePair.customer_id)
        .join(second, second.id == DuplicatePair.other_customer_id)
        .where(DuplicatePair.status == "open")
        .order_by(DuplicatePair.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    rows = [PairRow(pair, a, b) for pair, a, b in session.execute(query)]
    return PairPage(rows=rows, total=total, page=page, pages=pages)


@dataclass(frozen=True)
class Side:
    """One customer of the pair as the comparison shows it."""

    customer: Customer
    company_name: str | None
    owner_name: str | None
    tags: list[str]
    orders: orders.OrderTotals


@dataclass(frozen=True)
class FieldRow:
    """One group of values (``merge.KEEP_GROUPS``) of both customers; ``choice``: a person must pick one."""

    group: str
    first: tuple[Any, ...]
    second: tuple[Any, ...]

    @property
    def differs(self) -> bool:
        return self.first != self.second

    @property
    def empty(self) -> bool:
        """Neither customer has a value (the page leaves the row out)."""
        return not _filled(self.first) and not _filled(self.second)

    @property
    def choice(self) -> bool:
        """Both have a value and they differ (one empty: the merge keeps the value there is)."""
        return self.differs and _filled(self.first) and _filled(self.second)


def _filled(values: tuple[Any, ...]) -> bool:
    return any(v not in (None, "") for v in values)


# The groups the comparison shows, in the page's order; the rest of KEEP_GROUPS (time zone, language, source)
# follows them, so a group added to the merge shows up here too.
SHOWN_FIRST = (
    "name",
    "name_kana",
    "email",
    "phone",
    "address",
    "birth_date",
    "gender",
    "company_id",
    "owner_id",
    "lifecycle_stage",
    "external_id",
)


@dataclass(frozen=True)
class Comparison:
    pair: DuplicatePair
    first: Side
    second: Side
    fields: list[FieldRow]

    @property
    def mergeable(self) -> bool:
        """The pair is open and both customers are still active (not merged elsewhere meanwhile)."""
        return self.pair.status == "open" and all(s.customer.status == "active" for s in (self.first, self.second))


def compare(session: Session, *, actor: Actor, pair_id: int) -> Comparison:
    """Both customers of a pair, field group by field group, with what the merge page shows beside them."""
    require(actor, "customers:read")
    pair = _pair(session, pair_id)
    first, second = session.get(Customer, pair.customer_id), session.get(Customer, pair.other_customer_id)
    assert first is not None and second is not None  # the pair's foreign keys cascade on delete
    people = auth.user_names(session, {c.owner_id for c in (first, second) if c.owner_id})
    totals = orders.completed_totals(session, {first.id, second.id})

    def side(customer: Customer) -> Side:
        return Side(
            customer=customer,
            company_name=customer.company.name if customer.company else None,
            owner_name=people.get(customer.owner_id) if customer.owner_id else None,
            tags=[t.name for t in customer.tags],
            orders=totals[customer.id],
        )

    order = [*SHOWN_FIRST, *(g for g in merge.KEEP_GROUPS if g not in SHOWN_FIRST)]
    fields = [
        FieldRow(
            group,
            tuple(getattr(first, name) for name in merge.KEEP_GROUPS[group]),
            tuple(getattr(second, name) for name in merge.KEEP_GROUPS[group]),
        )
        for group in order
    ]
    return Comparison(pair=pair, first=side(first), second=side(second), fields=fields)


def merge_pair(
    session: Session,
    *,
    actor: Actor,
    pair_id: int,
    survivor_id: int,
    picked: Mapping[str, int],
    versions: Mapping[int, int] | None = None,
) -> Customer:
    """Merge the two customers of an open pair into ``survivor_id``, taking each picked group from the customer
    named in ``picked`` (group -> customer id); audited with the picked values by ``merge_customers``."""
    require(actor, "customers:merge")
    pair = _pair(session, pair_id)
    if pair.status != "open":
        raise Conflict(f"duplicate pair {pair_id} is already {pair.status}", key="duplicates.error_closed")
    ids = (pair.customer_id, pair.other_customer_id)
    if survivor_id not in ids:
        raise ValidationError(f"customer {survivor_id} is not in duplicate pair {pair_id}", field="survivor")
    merged_id = ids[1] if survivor_id == ids[0] else ids[0]
    keep: dict[str, merge.Side] = {}
    for group, customer_id in picked.items():
        if customer_id not in ids:
            raise ValidationError(f"customer {customer_id} is not in duplicate pair {pair_id}", field=group)
        keep[group] = "survivor" if customer_id == survivor_id else "merged"
    return merge.merge_customers(
        session,
        actor=actor,
        survivor_id=survivor_id,
        merged_id=merged_id,
        reason=f"duplicate pair {pair.id}: {pair.reason}"[:200],
        keep=keep,
        expected_versions=versions,
    )


def _pair(session: Session, pair_id: int) -> DuplicatePair:
    pair = session.get(DuplicatePair, pair_id)
    if pair is None:
        raise NotFound(f"duplicate pair {pair_id} not found")
    return pair
