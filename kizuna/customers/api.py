from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor, require
from kizuna.customers import company360, duplicates, edits, identities, merge, service
from kizuna.customers import customer360 as c360
from kizuna.customers.filters import COMPANY_FILTERS, CUSTOMER_FILTERS
from kizuna.customers.models import Company, Customer
from kizuna.customers.schemas import (
    BulkChange,
    BulkResult,
    Company360,
    CompanyCreate,
    CompanyRead,
    CompanyUpdate,
    ConsentCreate,
    ConsentRead,
    Customer360,
    CustomerCreate,
    CustomerRead,
    CustomerUpdate,
    DuplicatePairRead,
    IdentityAdded,
    IdentityCreate,
    IdentityRead,
    MergeRequest,
    NoteCreate,
    NoteRead,
    TimelineItem,
)
from kizuna.customers.timeline import KINDS, timeline
from kizuna.schemas import Page
from kizuna.web.api import Cursor, Limit, Q, Sort, page_of, require_if_match, require_precondition, with_etag
from kizuna.web.deps import DB, APIActor, Authorization, etag, with_api_actor

router = APIRouter(prefix="/customers", tags=["customers"])
companies = APIRouter(prefix="/companies", tags=["companies"])
IfMatch = Annotated[str | None, Header(description='ETag from a GET, e.g. W/"3"')]
TimelinePage = Page[TimelineItem]
JSON = "application/json"


@router.get("", response_model=Page[CustomerRead])
def list_customers(
    request: Request,
    session: DB,
    actor: APIActor,
    q: Q = None,
    sort: Sort = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict:
    """Customers, filtered by any field in the customer filter set (``?prefecture=東京都&created_at__gte=...``).

    Active customers only, unless a status is asked for (``status=merged``, ``status=all``).
    """
    require(actor, "customers:read")
    return page_of(
        session, CUSTOMER_FILTERS, select(Customer), request, schema=CustomerRead, sort=sort, cursor=cursor, limit=limit
    )


@router.post("", response_model=CustomerRead, status_code=201)
def create_customer(data: CustomerCreate, response: Response, session: DB, actor: APIActor) -> Customer:
    customer = service.create_customer(session, actor=actor, data=data)
    session.commit()
    with_etag(response, customer.version)
    response.headers["Location"] = f"/api/v1/customers/{customer.id}"
    return customer


@router.post("/bulk", response_model=BulkResult)
def bulk_change(data: BulkChange, session: DB, actor: APIActor) -> BulkResult:
    """Tag, untag or assign an owner to a selection; each customer gets its own audit entry and event."""
    changed = edits.bulk_change(
        session,
        actor=actor,
        customer_ids=data.ids,
        add_tags=data.add_tags,
        remove_tags=data.remove_tags,
        owner_id=data.owner_id,
        clear_owner=data.clear_owner,
    )
    session.commit()
    return BulkResult(changed=changed)


@router.get("/duplicates", response_model=list[DuplicatePairRead])
def list_duplicates(
    session: DB,
    actor: APIActor,
    status: Literal["open", "dismissed", "merged"] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list:
    """Pairs of customers that may be one person (a shared phone ...), oldest first, for a person to decide."""
    return duplicates.list_pairs(session, actor=actor, status=status, limit=limit)


@router.post("/duplicates/{pair_id}/dismiss", response_model=DuplicatePairRead)
def dismiss_duplicate(pair_id: int, session: DB, actor: APIActor) -> object:
    """Not the same person: the pair closes and is not proposed again. To merge, use ``POST .../merge``."""
    pair = duplicates.dismiss(session, actor=actor, pair_id=pair_id)
    session.commit()
    return pair


@router.get("/{customer_id}", response_model=CustomerRead)
async def get_customer(customer_id: int, request: Request, authorization: Authorization = None) -> Response:
    """A customer; an id merged into another answers with the surviving customer."""

    def read(session: Session, actor: Actor) -> Response:
        require(actor, "customers:read")
        customer = service.read_customer(session, customer_id)
        # Serialised straight from the validated model (the response_model above documents it).
        return Response(customer.model_dump_json(), media_type=JSON, headers={"ETag": etag(customer.version)})

    return await with_api_actor(request, authorization, read)


@router.patch("/{customer_id}", response_model=CustomerRead)
def update_customer(
    customer_id: int, data: CustomerUpdate, response: Response, session: DB, actor: APIActor, if_match: IfMatch = None
) -> Customer:
    version = require_precondition(if_match, data.version)
    customer = service.update_customer(
        session, actor=actor, customer_id=customer_id, data=data, expected_version=version
    )
    session.commit()
    with_etag(response, customer.version)
    return customer


@router.delete("/{customer_id}", status_code=204)
def delete_customer(customer_id: int, session: DB, actor: APIActor, if_match: IfMatch = None) -> Response:
    service.delete_customer(session, actor=actor, customer_id=customer_id, expected_version=require_if_match(if_match))
    session.commit()
    return Response(status_code=204)


@router.get("/{customer_id}/timeline", response_model=TimelinePage)
async def customer_timeline(
    customer_id: int,
    request: Request,
    authorization: Authorization = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    kinds: Annotated[str | None, Query(description=f"Comma-separated subset of {', '.join(KINDS)}")] = None,
) -> Response:
    """Every touchpoint of the customer, newest first: events, orders, notes, consents, merges."""

    def read(session: Session, actor: Actor) -> Response:
        require(actor, "customers:read")
        resolved = service.resolve_id(session, customer_id)
        chosen = [k.strip() for k in kinds.split(",")] if kinds else None
        items, next_cursor = timeline(session, resolved, limit=limit, cursor=cursor, kinds=chosen)
        return Response(TimelinePage(items=items, next_cursor=next_cursor).model_dump_json(), media_type=JSON)

    return await with_api_actor(request, authorization, read)


@router.get("/{customer_id}/360", response_model=Customer360)
def customer_360(
    customer_id: int,
    session: DB,
    actor: APIActor,
    timeline_cursor: Annotated[str | None, Query(description="timeline_next_cursor of a previous read.")] = None,
    timeline_limit: Limit = 50,
    timeline_kinds: Annotated[
        str | None, Query(description=f"Comma-separated subset of {', '.join(KINDS)}; keep it with the cursor.")
    ] = None,
) -> Customer360:
    """Everything the customer 360 page shows, in one read: the customer, a summary (revenue as the analytics count
    spend, orders, last activity, owner, marketing consent per channel), company, owner, merged ids, consents in
    force, identities, newest orders, notes and the newest timeline entries. A merged id reads its survivor."""
    return c360.customer_360(
        session,
        actor=actor,
        customer_id=customer_id,
        timeline_cursor=timeline_cursor,
        timeline_limit=timeline_limit,
        timeline_kinds=[k.strip() for k in timeline_kinds.split(",") if k.strip()] if timeline_kinds else None,
    )


@router.get("/{customer_id}/consents", response_model=list[ConsentRead])
def list_consents(
    customer_id: int,
    session: DB,
    actor: APIActor,
    history: Annotated[bool, Query(description="Every decision, not only those in force")] = False,
) -> list:
    require(actor, "consents:read")
    resolved = service.resolve_id(session, customer_id)
    return service.consent_history(session, resolved) if history else service.current_consents(session, resolved)


@router.post("/{customer_id}/consents", response_model=ConsentRead, status_code=201)
def record_consent(customer_id: int, data: ConsentCreate, session: DB, actor: APIActor) -> object:
    consent = service.record_consent(session, actor=actor, customer_id=customer_id, data=data)
    session.commit()
    return consent


@router.get("/{customer_id}/notes", response_model=list[NoteRead])
def list_notes(customer_id: int, session: DB, actor: APIActor) -> list:
    require(actor, "notes:read")
    return service.list_notes(session, service.resolve_id(session, customer_id))


@router.post("/{customer_id}/notes", response_model=NoteRead, status_code=201)
def add_note(customer_id: int, data: NoteCreate, session: DB, actor: APIActor) -> object:
    note = service.add_note(session, actor=actor, customer_id=customer_id, data=data)
    session.commit()
    return note


@router.get("/{customer_id}/identities", response_model=list[IdentityRead])
def list_identities(customer_id: int, session: DB, actor: APIActor) -> list:
    require(actor, "customers:read")
    return identities.list_identities(session, service.resolve_id(session, customer_id))


@router.post("/{customer_id}/identities", response_model=IdentityAdded, status_code=201)
def add_identity(customer_id: int, data: IdentityCreate, session: DB, actor: APIActor) -> IdentityAdded:
    """Add a way to recognise the customer. A unique value held by another customer is refused (409) with
    that customer named; a shared phone is accepted and proposes the pair as possible duplicates."""
    customer = service.get_customer(session, customer_id)
    row, others = identities.add_identity(
        session, actor=actor, customer=customer, kind_name=data.kind, value=data.value, primary=data.primary
    )
    duplicates.propose_all(session, customer.id, others, f"same {data.kind}")
    session.commit()
    return IdentityAdded.model_validate({**IdentityRead.model_validate(row).model_dump(), "shared_with": others})


@router.delete("/{customer_id}/identities/{identity_id}", status_code=204)
def remove_identity(customer_id: int, identity_id: int, session: DB, actor: APIActor) -> Response:
    """Remove one identity; if it was the primary of its kind, the oldest other one of that kind takes over."""
    customer = service.get_customer(session, customer_id)
    identities.remove_identity(session, actor=actor, customer=customer, identity_id=identity_id)
    session.commit()
    return Response(status_code=204)


@router.post("/{customer_id}/merge", response_model=CustomerRead)
def merge_customer(customer_id: int, data: MergeRequest, response: Response, session: DB, actor: APIActor) -> Customer:
    """Fold another customer into this one; its id keeps resolving here."""
    require(actor, "customers:merge")
    customer = merge.merge_customers(
        session, actor=actor, survivor_id=customer_id, merged_id=data.merge_id, reason=data.reason
    )
    session.commit()
    session.refresh(customer)
    with_etag(response, customer.version)
    return customer


@companies.get("", response_model=Page[CompanyRead])
def list_companies(
    request: Request,
    session: DB,
    actor: APIActor,
    q: Q = None,
    sort: Sort = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict:
    require(actor, "companies:read")
    return page_of(
        session, COMPANY_FILTERS, select(Company), request, schema=CompanyRead, sort=sort, cursor=cursor, limit=limit
    )


@companies.post("", response_model=CompanyRead, status_code=201)
def create_company(data: CompanyCreate, response: Response, session: DB, actor: APIActor) -> Company:
    company = service.create_company(session, actor=actor, data=data)
    session.commit()
    with_etag(response, company.version)
    response.headers["Location"] = f"/api/v1/companies/{company.id}"
    return company


@companies.get("/{company_id}", response_model=CompanyRead)
def get_company(company_id: int, response: Response, session: DB, actor: APIActor) -> Company:
    require(actor, "companies:read")
    company = service.get_company(session, company_id)
    with_etag(response, company.version)
    return company


@companies.get("/{company_id}/360", response_model=Company360)
def company_360(
    company_id: int,
    session: DB,
    actor: APIActor,
    contacts_cursor: Annotated[str | None, Query(description="contacts_next_cursor of a previous read.")] = None,
    contacts_limit: Limit = 50,
) -> Company360:
    """Everything the company page shows, in one read: the company, its owner, a page of contacts (by name) with
    each one's last activity, the contacts' spend (as the analytics count it) and their newest touchpoints."""
    return company360.company_360(
        session, actor=actor, company_id=company_id, contacts_cursor=contacts_cursor, contacts_limit=contacts_limit
    )


@companies.patch("/{company_id}", response_model=CompanyRead)
def update_company(
    company_id: int, data: CompanyUpdate, response: Response, session: DB, actor: APIActor, if_match: IfMatch = None
) -> Company:
    version = require_precondition(if_match, data.version)
    company = service.update_company(session, actor=actor, company_id=company_id, data=data, expected_version=version)
    session.commit()
    with_etag(response, company.version)
    return company


@companies.delete("/{company_id}", status_code=204)
def delete_company(company_id: int, session: DB, actor: APIActor, if_match: IfMatch = None) -> Response:
    service.delete_company(session, actor=actor, company_id=company_id, expected_version=require_if_match(if_match))
    session.commit()
    return Response(status_code=204)
