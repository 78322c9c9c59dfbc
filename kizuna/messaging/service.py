"""Messaging actions the edges call: templates (checked when saved, previewed with a real customer), the
suppression list and the message log. Each takes the acting user, checks the permission and writes its audit
entry in the caller's transaction; the edge commits.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.db import check_version, utcnow
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.messaging import templates
from kizuna.messaging.models import Message, MessageEvent, Suppression, Template
from kizuna.messaging.schemas import PreviewRead, TemplateCreate, TemplateUpdate
from kizuna.normalize import normalize_email

# Suppressions with these reasons stop every message to the address; an unsubscribe stops marketing only, so
# a customer who unsubscribed from the newsletter still gets the confirmation of the order they place.
SUPPRESSES_SERVICE = ("hard_bounce", "soft_bounces", "complaint", "manual")


def normalise_address(channel: str, address: str) -> str:
    address = address.strip()
    return address.lower() if channel == "email" else address


# --- suppressions ----------------------------------------------------------------------------------------


def suppress(
    session: Session,
    *,
    actor: Actor,
    channel: str,
    address: str,
    reason: str,
    customer_id: int | None = None,
    message_id: int | None = None,
    note: str | None = None,
) -> Suppression:
    """Add an address to the suppression list (a no-op returning the existing entry when it is there already)."""
    require(actor, "suppressions:write")
    address = normalise_address(channel, address)
    if not address:
        raise ValidationError("an address to suppress is required", field="address")
    found = session.scalars(
        select(Suppression).where(Suppression.channel == channel, Suppression.address == address)
    ).first()
    if found is not None:
        return found
    entry = Suppression(
        channel=channel,
        address=address,
        reason=reason,
        customer_id=customer_id,
        message_id=message_id,
        note=note,
        created_at=utcnow(),
        created_by=actor.label,
    )
    session.add(entry)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="suppression.create",
        entity_type="suppression",
        entity_id=entry.id,
        customer_id=customer_id,
        details={"channel": channel, "reason": reason, "message_id": message_id},
        summary=f"suppressed a {channel} address ({reason})",
    )
    return entry


def unsuppress(session: Session, *, actor: Actor, suppression_id: int) -> None:
    require(actor, "suppressions:write")
    entry = session.get(Suppression, suppression_id)
    if entry is None:
        raise NotFound(f"suppression {suppression_id} not found")
    audit.record(
        session,
        actor=actor,
        action="suppression.delete",
        entity_type="suppression",
        entity_id=entry.id,
        customer_id=entry.customer_id,
        details={"channel": entry.channel, "reason": entry.reason},
        summary=f"removed a {entry.channel} address from the suppression list",
    )
    session.delete(entry)


def list_suppressions(
    session: Session, *, actor: Actor, channel: str | None = None, q: str = "", limit: int = 100, offset: int = 0
) -> tuple[list[Suppression], int]:
    require(actor, "messages:read")
    query = select(Suppression)
    if channel:
        query = query.where(Suppression.channel == channel)
    if q:
        query = query.where(Suppression.address.contains(q.strip().lower(), autoescape=True))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Suppression.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total)


EXPORT_COLUMNS = ("id", "channel", "address", "reason", "customer_id", "message_id", "note", "created_at", "created_by")


def export_suppressions(session: Session, *, actor: Actor) -> str:
    """The whole list as CSV, cells a spreadsheet would run as formulas neutralised (``kizuna.exports``)."""
    from kizuna.exports.service import neutralize

    require(actor, "data:export")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for entry in session.scalars(select(Suppression).order_by(Suppression.id)):
        row = [getattr(entry, name) for name in EXPORT_COLUMNS]
        writer.writerow(["" if v is None else neutralize(v.isoformat() if hasattr(v, "isoformat") else v) for v in row])
        count += 1
    audit.record(
        session,
        actor=actor,
        action="export.suppressions",
        entity_type="suppression",
        details={"kind": "suppressions", "rows": count, "format": "csv"},
        summary=f"exported {count} suppressions",
    )
    return out.getvalue()


def suppressed(session: Session, channel: str, addresses: Iterable[str]) -> dict[str, str]:
    """Normalised address -> suppression reason, for those of ``addresses`` on the list."""
    wanted = sorted({normalise_address(channel, a) for a in addresses if a})
    out: dict[str, str] = {}
    for start in range(0, len(wanted), 5000):
        query = select(Suppression.address, Suppression.reason).where(
            Suppression.channel == channel, Suppression.address.in_(wanted[start : start + 5000])
        )
        out.update({address: reason for address, reason in session.execute(query)})
    return out


# --- templates ---------------------------------------------------------------------------------------------


def list_templates(session: Session, *, actor: Actor, channel: str | None = None) -> list[Template]:
    require(actor, "templates:read")
    query = select(Template).order_by(Template.name)
    if channel:
        query = query.where(Template.channel == channel)
    return list(session.scalars(query))


def get_template(session: Session, template_id: int, *, actor: Actor) -> Template:
    require(actor, "templates:read")
    template = session.get(Template, template_id)
    if template is None:
        raise NotFound(f"template {template_id} not found")
    return template


def template_by_name(session: Session, name: str) -> Template | None:
    return session.scalars(select(Template).where(Template.name == name)).first()


def default_preview_customer(session: Session) -> int | None:
    """The customer a template is checked and previewed against unless one is named: the newest active one."""
    from kizuna.customers.models import Customer

    return session.scalar(select(Customer.id).where(Customer.status == "active").order_by(Customer.id.desc()).limit(1))


def _check_customer(session: Session, customer_id: int | None) -> dict[str, Any]:
    """The variables of the customer a template is checked against: the one named, else the newest active one."""
    if customer_id is None:
        customer_id = default_preview_customer(session)
        if customer_id is None:
            return templates.sample_variables()
    found = templates.customer_variables(session, [customer_id])
    if customer_id not in found:
        raise ValidationError(f"customer {customer_id} not found", field="check_customer_id")
    return found[customer_id]


def check_template(session: Session, parts: templates.Parts, *, customer_id: int | None = None) -> None:
    """Syntax and variable names first, then a render against a real customer: ``ValidationError`` names the part."""
    if not any((parts.subject, parts.html, parts.text, parts.body)):
        raise ValidationError("a template needs a subject and an HTML or text body (or a body for LINE/webhooks)")
    templates.check_syntax(parts)
    variables = {**_check_customer(session, customer_id), **_sample_extras()}
    if parts.uses("recommendations"):
        variables["recommendations"] = templates.recommendations_for([])
    if parts.uses("nps_links"):
        variables["nps_links"] = _sample_nps_links(session)
    templates.check_render(parts, variables)


def _sample_extras() -> dict[str, Any]:
    return {
        "unsubscribe_url": "https://example.invalid/u/preview",
        "sender": {"name": "", "address": "", "postal_address": "", "contact": ""},
        "message": {"id": 0, "source": "manual", "source_id": None, "variant": None},
        "recommendations": templates.recommendations_for([]),
        "nps_links": _sample_nps_links(None),
    }


def _sample_nps_links(session: Session | None) -> Any:
    """Example NPS links; with a session, a survey id that names no active survey is refused."""
    from kizuna.surveys import links
    from kizuna.surveys.service import active_link_days

    return links.sample_function(active_link_days(session) if session is not None else None)


def create_template(session: Session, *, actor: Actor, data: TemplateCreate) -> Template:
    require(actor, "templates:write")
    if template_by_name(session, data.name) is not None:
        raise Conflict(f"a template named {data.name!r} already exists", field="name")
    parts = templates.Parts(subject=data.subject, html=data.html, text=data.text, body=data.body)
    if data.channel == "email" and not data.subject:
        raise ValidationError("an email template needs a subject", field="subject")
    check_template(session, parts, customer_id=data.check_customer_id)
    sender = _sender(data.model_dump(include={"from_name", "from_address", "reply_to"}), data.channel)
    now = utcnow()
    template = Template(
        **sender,
        name=data.name,
        channel=data.channel,
        kind=data.kind,
        subject=data.subject,
        html=data.html,
        text=data.text,
        body=data.body,
        version=1,
        created_at=now,
        updated_at=now,
        updated_by=actor.label,
    )
    session.add(template)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="template.create",
        entity_type="template",
        entity_id=template.id,
        details={"name": template.name, "channel": template.channel, "kind": template.kind},
        summary=f"created template {template.name}",
    )
    return template


def _sender(values: dict[str, Any], channel: str) -> dict[str, str]:
    """A template's own sender fields, cleaned: the addresses must be addresses, and only email has them."""
    out = {k: (v or "").strip() for k, v in values.items() if v is not None}
    if channel != "email" and any(out.values()):
        raise ValidationError("only email templates have a sender of their own", field="from_address")
    for name in ("from_address", "reply_to"):
        if out.get(name):
            out[name] = normalize_email(out[name], field=name) or ""
    return out


def update_template(session: Session, template_id: int, *, actor: Actor, data: TemplateUpdate) -> Template:
    require(actor, "templates:write")
    template = get_template(session, template_id, actor=actor)
    check_version(template.version, body=data.version)
    values = data.model_dump(exclude_unset=True, exclude={"version", "check_customer_id"})
    if "name" in values and values["name"] != template.name and template_by_name(session, values["name"]):
        raise Conflict(f"a template named {values['name']!r} already exists", field="name")
    merged = {k: values.get(k, getattr(template, k)) for k in ("subject", "html", "text", "body")}
    sender_given = {k: v for k, v in values.items() if k in ("from_name", "from_address", "reply_to")}
    values.update(_sender(sender_given, template.channel))
    check_template(session, templates.Parts(**merged), customer_id=data.check_customer_id)
    before = {k: getattr(template, k) for k in values}
    for name, value in values.items():
        setattr(template, name, value)
    diff = audit.changes(before, {k: getattr(template, k) for k in values})
    if diff:
        template.version += 1
        template.updated_at = utcnow()
        template.updated_by = actor.label
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="template.update",
            entity_type="template",
            entity_id=template.id,
            details={"changed": sorted(diff), "version": template.version},
            summary=f"edited template {template.name}",
        )
    return template


def delete_template(session: Session, template_id: int, *, actor: Actor) -> None:
    require(actor, "templates:write")
    template = get_template(session, template_id, actor=actor)
    waiting = session.scalar(
        select(func.count())
        .select_from(Message)
        .where(Message.template_id == template.id, Message.status.in_(("queued", "sending")))
    )
    if waiting:
        raise Conflict(f"template {template.name!r} is used by {waiting} message(s) waiting to be sent")
    audit.record(
        session,
        actor=actor,
        action="template.delete",
        entity_type="template",
        entity_id=template.id,
        details={"name": template.name},
        summary=f"deleted template {template.name}",
    )
    session.delete(template)


def preview(
    session: Session, *, actor: Actor, customer_id: int, parts: templates.Parts, channel: str, kind: str
) -> PreviewRead:
    """The content as ``customer_id`` would get it (footer included, links not yet tracked)."""
    require(actor, "templates:read")
    from kizuna.customers.service import resolve_id

    customer_id = resolve_id(session, customer_id)
    variables = {**_sample_extras(), **_check_customer(session, customer_id), "context": {}}
    if parts.uses("nps_links"):
        variables["nps_links"] = _sample_nps_links(session)
    if parts.uses("recommendations"):
        products = templates.batch_recommendations(session, [customer_id]).get(customer_id, [])
        variables["recommendations"] = templates.recommendations_for(products)
    if channel == "email":
        from kizuna.messaging.email import preview_extras

        extras, finish = preview_extras(session, kind=kind, locale=variables["customer"].get("locale"))
        variables.update(extras)
    try:
        rendered = templates.render(parts, variables)
    except templates.RenderError as exc:
        raise ValidationError(exc.message, field=exc.field) from exc
    if channel == "email":
        rendered = finish(rendered)
        return PreviewRead(customer_id=customer_id, **rendered)
    return PreviewRead(customer_id=customer_id, body=rendered)


# --- the message log ---------------------------------------------------------------------------------------


def list_messages(
    session: Session,
    *,
    actor: Actor,
    customer_id: int | None = None,
    status: str | None = None,
    source: str | None = None,
    source_id: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[Message], int | None]:
    """Newest first; the second value is the ``before`` of the next page (None at the end)."""
    require(actor, "messages:read")
    query = select(Message)
    if customer_id is not None:
        query = query.where(Message.customer_id == customer_id)
    if status:
        query = query.where(Message.status == status)
    if source:
        query = query.where(Message.source == source)
    if source_id is not None:
        query = query.where(Message.source_id == source_id)
    if before is not None:
        query = query.where(Message.id < before)
    rows = list(session.scalars(query.order_by(Message.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1].id if more and rows else None


def get_message(session: Session, message_id: int, *, actor: Actor) -> tuple[Message, list[MessageEvent]]:
    require(actor, "messages:read")
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"message {message_id} not found")
    events = session.scalars(
        select(MessageEvent).where(MessageEvent.message_id == message_id).order_by(MessageEvent.id)
    )
    return message, list(events)


def status_counts(session: Session, *, actor: Actor) -> list[tuple[str, str | None, str, int]]:
    """(channel, reason, status, count) over every message: what the CLI's status prints."""
    require(actor, "messages:read")
    rows = session.execute(
        select(Message.channel, Message.reason, Message.status, func.count())
        .group_by(Message.channel, Message.reason, Message.status)
        .order_by(Message.channel, Message.status, Message.reason)
    )
    return [(c, r, s, int(n)) for c, r, s, n in rows]
