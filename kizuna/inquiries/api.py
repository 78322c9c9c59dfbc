"""/api/v1/inquiries: thin handlers over the inquiry services."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy import select

from kizuna.auth.permissions import require
from kizuna.inquiries import claims, email_in, queues, service, setup
from kizuna.inquiries.models import Inquiry, InquiryMessage
from kizuna.inquiries.schemas import (
    CategoryIn,
    CategoryRead,
    EmailInResult,
    InquiryCreate,
    InquiryDetail,
    InquiryRead,
    InquiryUpdate,
    MacroIn,
    MacroRead,
    MessageRead,
    ReplyCreate,
    Report,
    Status,
)
from kizuna.web.api import require_precondition, with_etag
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/inquiries", tags=["inquiries"])
IfMatch = Annotated[str | None, Header()]


def inquiry_read(inquiry: Inquiry) -> dict[str, Any]:
    values = {name: getattr(inquiry, name) for name in InquiryRead.model_fields if hasattr(inquiry, name)}
    values["reference"] = service.reference(inquiry.id)
    values["overdue"] = service.is_overdue(inquiry)
    values["sla_paused"] = inquiry.sla_paused_at is not None
    return values


def thread(session: DB, inquiry: Inquiry) -> list[InquiryMessage]:
    query = select(InquiryMessage).where(InquiryMessage.inquiry_id == inquiry.id)
    return list(session.scalars(query.order_by(InquiryMessage.created_at, InquiryMessage.id)))


@router.get("", response_model=list[InquiryRead])
def list_inquiries(
    session: DB,
    actor: APIActor,
    tab: Annotated[str, Query(description="mine, team, unclaimed or all")] = "all",
    status: Annotated[str, Query(description="'open' (new, open and pending), a status, or '' for every one")] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """A queue, overdue first, then unclaimed, then by the nearest SLA deadline."""
    return [inquiry_read(i) for i in queues.queue(session, actor=actor, tab=tab, status=status or None, limit=limit)]


@router.post("", response_model=InquiryRead, status_code=201)
def create_inquiry(data: InquiryCreate, response: Response, session: DB, actor: APIActor) -> dict[str, Any]:
    """Open an inquiry (linked to the customer by customer_id, e-mail or phone; a new customer when none matches).
    A repeat from the same customer on the same category within the repeat window answers 200 with the open
    ticket it was appended to."""
    opened = service.open_inquiry(session, actor=actor, data=data)
    session.commit()
    if not opened.created:
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/inquiries/{opened.inquiry.id}"
    return inquiry_read(opened.inquiry)


@router.post("/email", response_model=EmailInResult)
async def email_in_endpoint(request: Request, session: DB, actor: APIActor) -> EmailInResult:
    """E-mail in for a mail server's pipe or relay: the body is the raw RFC 822 message (``message/rfc822``).
    A reply is threaded by the ``[#KZ-n]`` subject reference or In-Reply-To/References; else a new ticket."""
    raw = await request.body()
    result = email_in.receive(session, actor=actor, raw=raw)
    session.commit()
    return result


@router.get("/categories", response_model=list[CategoryRead])
def list_categories(session: DB, actor: APIActor) -> list[Any]:
    require(actor, "inquiries:read")
    return setup.list_categories(session)


@router.post("/categories", response_model=CategoryRead, status_code=201)
def create_category(data: CategoryIn, session: DB, actor: APIActor) -> Any:
    category = setup.create_category(session, actor=actor, data=data)
    session.commit()
    return category


@router.put("/categories/{category_id}", response_model=CategoryRead)
def update_category(category_id: int, data: CategoryIn, session: DB, actor: APIActor) -> Any:
    category = setup.update_category(session, actor=actor, category_id=category_id, data=data)
    session.commit()
    return category


@router.get("/macros", response_model=list[MacroRead])
def list_macros(session: DB, actor: APIActor) -> list[Any]:
    require(actor, "inquiries:read")
    return setup.list_macros(session)


@router.post("/macros", response_model=MacroRead, status_code=201)
def create_macro(data: MacroIn, session: DB, actor: APIActor) -> Any:
    macro = setup.create_macro(session, actor=actor, data=data)
    session.commit()
    return macro


@router.delete("/macros/{macro_id}", status_code=204)
def delete_macro(macro_id: int, session: DB, actor: APIActor) -> Response:
    setup.delete_macro(session, actor=actor, macro_id=macro_id)
    session.commit()
    return Response(status_code=204)


@router.get("/report", response_model=Report)
def report(session: DB, actor: APIActor) -> Report:
    """Median first-response and resolution minutes per agent and per category."""
    return queues.report(session, actor=actor)


@router.get("/{inquiry_id}", response_model=InquiryDetail)
def get_inquiry(inquiry_id: int, response: Response, session: DB, actor: APIActor) -> dict[str, Any]:
    require(actor, "inquiries:read")
    inquiry = service.get_inquiry(session, inquiry_id)
    with_etag(response, inquiry.version)
    return {**inquiry_read(inquiry), "messages": [MessageRead.model_validate(m) for m in thread(session, inquiry)]}


@router.patch("/{inquiry_id}", response_model=InquiryRead)
def update_inquiry(
    inquiry_id: int, data: InquiryUpdate, response: Response, session: DB, actor: APIActor, if_match: IfMatch = None
) -> dict[str, Any]:
    """Change status, priority, category, team or subject; needs ``If-Match`` or ``version``."""
    expected = require_precondition(if_match, data.version)
    inquiry = service.update_inquiry(session, actor=actor, inquiry_id=inquiry_id, data=data, expected_version=expected)
    session.commit()
    with_etag(response, inquiry.version)
    return inquiry_read(inquiry)


@router.post("/{inquiry_id}/claim", response_model=InquiryRead)
def claim(inquiry_id: int, session: DB, actor: APIActor) -> dict[str, Any]:
    """Take the ticket; 409 when another agent holds it or it is closed."""
    inquiry = claims.claim(session, actor=actor, inquiry_id=inquiry_id)
    session.commit()
    return inquiry_read(inquiry)


@router.post("/{inquiry_id}/release", response_model=InquiryRead)
def release(inquiry_id: int, session: DB, actor: APIActor) -> dict[str, Any]:
    inquiry = claims.release(session, actor=actor, inquiry_id=inquiry_id)
    session.commit()
    return inquiry_read(inquiry)


@router.post("/{inquiry_id}/messages", response_model=MessageRead, status_code=201)
def add_message(inquiry_id: int, data: ReplyCreate, session: DB, actor: APIActor) -> Any:
    """A reply (sent to the customer by e-mail) or, with ``note: true``, an internal note."""
    message = service.reply(session, actor=actor, inquiry_id=inquiry_id, data=data)
    session.commit()
    return message


__all__ = ["router", "Status"]
