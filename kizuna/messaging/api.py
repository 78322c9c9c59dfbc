"""``/api/v1/messaging``: templates, previews, the suppression list, the message log, bounces, the complaint rate
and the email settings; and, outside the API (``public``), what recipients open from a mail: ``/u/{token}``
(unsubscribe), ``/t/o/{token}`` (open pixel) and ``/t/c/{token}`` (click redirect)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from kizuna.errors import ValidationError
from kizuna.messaging import bounces, service, settings, templates
from kizuna.messaging.schemas import (
    BounceBatch,
    BounceReport,
    BounceResult,
    ComplaintRateRead,
    EmailSettingsIn,
    EmailSettingsRead,
    MessageDetail,
    MessageEventRead,
    MessageRead,
    MessagesPage,
    PreviewRead,
    PreviewRequest,
    SuppressionCreate,
    SuppressionRead,
    TemplateCreate,
    TemplateRead,
    TemplateUpdate,
)
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/messaging", tags=["messaging"])


# --- templates ---------------------------------------------------------------------------------------------


@router.get("/templates", response_model=list[TemplateRead])
def list_templates(session: DB, actor: APIActor, channel: str | None = None) -> list[TemplateRead]:
    return [TemplateRead.model_validate(t) for t in service.list_templates(session, actor=actor, channel=channel)]


@router.post("/templates", response_model=TemplateRead, status_code=201)
def create_template(session: DB, actor: APIActor, data: TemplateCreate) -> TemplateRead:
    """Create a template; refused (422, naming the part) when it does not parse, names an unknown variable or
    fails to render for a real customer."""
    template = service.create_template(session, actor=actor, data=data)
    session.commit()
    return TemplateRead.model_validate(template)


@router.get("/templates/{template_id}", response_model=TemplateRead)
def get_template(session: DB, actor: APIActor, template_id: int) -> TemplateRead:
    return TemplateRead.model_validate(service.get_template(session, template_id, actor=actor))


@router.patch("/templates/{template_id}", response_model=TemplateRead)
def update_template(session: DB, actor: APIActor, template_id: int, data: TemplateUpdate) -> TemplateRead:
    template = service.update_template(session, template_id, actor=actor, data=data)
    session.commit()
    return TemplateRead.model_validate(template)


@router.delete("/templates/{template_id}", status_code=204)
def delete_template(session: DB, actor: APIActor, template_id: int) -> Response:
    service.delete_template(session, template_id, actor=actor)
    session.commit()
    return Response(status_code=204)


@router.post("/templates/{template_id}/preview", response_model=PreviewRead)
def preview_template(session: DB, actor: APIActor, template_id: int, customer_id: int) -> PreviewRead:
    """The saved template as this customer would get it (footer included, links not yet tracked)."""
    template = service.get_template(session, template_id, actor=actor)
    parts = templates.Parts.of(template)
    return service.preview(
        session, actor=actor, customer_id=customer_id, parts=parts, channel=template.channel, kind=template.kind
    )


@router.post("/preview", response_model=PreviewRead)
def preview_content(session: DB, actor: APIActor, body: PreviewRequest) -> PreviewRead:
    """Unsaved content as this customer would get it."""
    parts = templates.Parts(subject=body.subject, html=body.html, text=body.text, body=body.body)
    templates.check_syntax(parts)
    return service.preview(
        session, actor=actor, customer_id=body.customer_id, parts=parts, channel=body.channel, kind=body.kind
    )


# --- suppressions ------------------------------------------------------------------------------------------


@router.get("/suppressions", response_model=list[SuppressionRead])
def list_suppressions(
    session: DB,
    actor: APIActor,
    response: Response,
    channel: str | None = None,
    q: str = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[SuppressionRead]:
    rows, total = service.list_suppressions(session, actor=actor, channel=channel, q=q, limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    return [SuppressionRead.model_validate(r) for r in rows]


@router.post("/suppressions", response_model=SuppressionRead, status_code=201)
def add_suppression(session: DB, actor: APIActor, data: SuppressionCreate) -> SuppressionRead:
    entry = service.suppress(
        session, actor=actor, channel=data.channel, address=data.address, reason=data.reason, note=data.note
    )
    session.commit()
    return SuppressionRead.model_validate(entry)


@router.delete("/suppressions/{suppression_id}", status_code=204)
def remove_suppression(session: DB, actor: APIActor, suppression_id: int) -> Response:
    service.unsuppress(session, actor=actor, suppression_id=suppression_id)
    session.commit()
    return Response(status_code=204)


@router.get("/suppressions.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def export_suppressions(session: DB, actor: APIActor) -> Response:
    """The whole list as CSV (cells a spreadsheet would run as formulas are neutralised)."""
    text = service.export_suppressions(session, actor=actor)
    session.commit()
    return Response(
        text.encode("utf-8-sig"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
    )


# --- messages, bounces, complaint rate ---------------------------------------------------------------------


@router.get("/messages", response_model=MessagesPage)
def list_messages(
    session: DB,
    actor: APIActor,
    customer_id: int | None = None,
    status: str | None = None,
    source: str | None = None,
    source_id: int | None = None,
    before: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> MessagesPage:
    rows, next_before = service.list_messages(
        session,
        actor=actor,
        customer_id=customer_id,
        status=status,
        source=source,
        source_id=source_id,
        before=before,
        limit=limit,
    )
    return MessagesPage(items=[MessageRead.model_validate(m) for m in rows], next_before=next_before)


@router.get("/messages/{message_id}", response_model=MessageDetail)
def get_message(session: DB, actor: APIActor, message_id: int) -> MessageDetail:
    message, events = service.get_message(session, message_id, actor=actor)
    detail = MessageDetail.model_validate(message)
    detail.events = [MessageEventRead.model_validate(e) for e in events]
    return detail


@router.post("/bounces", response_model=BounceResult)
def report_bounces(session: DB, actor: APIActor, body: BounceBatch | BounceReport) -> BounceResult:
    """Record bounces and complaints (one report or ``{"reports": [...]}``): a hard bounce suppresses the address, a
    complaint suppresses it and withdraws the customer's marketing consent. Needs ``suppressions:write``."""
    reports = body.reports if isinstance(body, BounceBatch) else [body]
    result = bounces.record_reports(session, actor=actor, reports=reports)
    session.commit()
    return result


@router.get("/complaint-rate", response_model=ComplaintRateRead)
def complaint_rate(session: DB, actor: APIActor, source: str, source_id: int) -> ComplaintRateRead:
    """Complaints per sent message of a campaign or journey; ``level`` warning at 0.1%, pause at 0.3%."""
    from kizuna.auth.permissions import require

    require(actor, "messages:read")
    if source not in ("campaign", "journey"):
        raise ValidationError("source must be campaign or journey", field="source")
    return ComplaintRateRead.model_validate(bounces.complaint_rate(session, source, source_id).__dict__)


# --- settings ----------------------------------------------------------------------------------------------


@router.get("/settings/email", response_model=EmailSettingsRead)
def get_email_settings(session: DB, actor: APIActor) -> EmailSettingsRead:
    return settings.read_email(session, actor=actor)


@router.put("/settings/email", response_model=EmailSettingsRead)
def put_email_settings(session: DB, actor: APIActor, data: EmailSettingsIn) -> EmailSettingsRead:
    """Save the email settings; credentials are stored encrypted and never shown again (null keeps one, "" removes
    it)."""
    settings.save_email(session, actor=actor, data=data)
    session.commit()
    return settings.read_email(session, actor=actor)
