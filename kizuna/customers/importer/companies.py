"""A contact card's company as the customer's company record.

A vCard's ORG and a scanned business card's company arrive as ``attributes.company`` (text). A rep expects the
contact to appear under its company, as in a card-based tool, so after a batch is written each of its
customers that has no company yet is linked to the company of that name, created when none exists (by someone
who may create companies; otherwise only an existing one is linked). Names match after Unicode NFKC and
whitespace normalisation, so "ＡＢＣ商事　株式会社" and "ABC商事 株式会社" are one company.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor
from kizuna.customers.models import Company, Customer
from kizuna.normalize import normalize_text


def link_companies(session: Session, customer_ids: Iterable[int], *, actor: Actor) -> int:
    """Link each of ``customer_ids`` without a company to the company its ``attributes.company`` names;
    answers how many customers were linked."""
    ids = sorted(set(customer_ids))
    if not ids:
        return 0
    named: dict[str, list[int]] = {}
    rows = session.execute(
        select(Customer.id, Customer.attributes).where(Customer.id.in_(ids), Customer.company_id.is_(None))
    )
    for customer_id, attributes in rows:
        raw = (attributes or {}).get("company") if isinstance(attributes, dict) else None
        name = normalize_text(raw) if isinstance(raw, str) else None
        if name:
            named.setdefault(name[:200], []).append(customer_id)
    if not named:
        return 0
    found = {
        normalize_text(name): company_id
        for company_id, name in session.execute(select(Company.id, Company.name).where(Company.name.in_(named)))
    }
    if actor.can("companies:write"):
        made = [Company(name=name, attributes={}) for name in named if name not in found]
        if made:
            session.add_all(made)
            session.flush()
            found.update({c.name: c.id for c in made})
            for company in made:  # a few per file: the companies its cards name
                audit.record(
                    session,
                    actor=actor,
                    action="company.create",
                    entity_type="company",
                    entity_id=company.id,
                    summary=f"{company.name} (from a contact card)",
                )
    linked = 0
    for name, customers in named.items():
        if (company_id := found.get(name)) is None:
            continue
        result = session.execute(
            update(Customer)
            .where(Customer.id.in_(customers), Customer.company_id.is_(None))
            .values(company_id=company_id, version=Customer.version + 1)
        )
        linked += result.rowcount or 0
    return linked
