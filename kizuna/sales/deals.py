"""Deal actions: create, update, move between stages (with history), delete. Each checks the role rules
(access.py), writes its audit entry and its outbox message in the caller's transaction, and never commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.models import User
from kizuna.auth.permissions import Actor, require
from kizuna.customers.models import Company
from kizuna.customers.service import resolve_id
from kizuna.db import check_version, utcnow
from kizuna.errors import NotFound, ValidationError
from kizuna.fields import service as custom_fields
from kizuna.outbox.service import emit
from kizuna.sales import access, pipelines
from kizuna.sales.models import Deal, DealStageChange, Stage
from kizuna.sales.schemas import DealCreate, DealUpdate

_FIELDS = (
    "name", "customer_id", "company_id", "amount", "currency", "probability", "expected_close_date", "owner_id",
    "lost_reason", "attributes",
)  # fmt: skip


def get_deal(session: Session, deal_id: int) -> Deal:
    deal = session.get(Deal, deal_id)
    if deal is None:
        raise NotFound(f"deal {deal_id} not found")
    return deal


def _check_links(
    session: Session, *, customer_id: int | None, company_id: int | None, owner_id: int | None
) -> int | None:
    """Refuse links to records that do not exist; returns the customer id a merge left (the survivor's)."""
    if customer_id is not None:
        try:
            customer_id = resolve_id(session, customer_id)
        except NotFound as exc:
            raise ValidationError(f"customer {customer_id} does not exist", field="customer_id") from exc
    if company_id is not None and session.get(Company, company_id) is None:
        raise ValidationError(f"company {company_id} does not exist", field="company_id")
    if owner_id is not None and session.get(User, owner_id) is None:
        raise ValidationError(f"user {owner_id} does not exist", field="owner_id")
    return customer_id


def _payload(deal: Deal, **extra: Any) -> dict[str, Any]:
    return {
        "deal_id": deal.id,
        "pipeline_id": deal.pipeline_id,
        "stage_id": deal.stage_id,
        "customer_id": deal.customer_id,
        "company_id": deal.company_id,
        "owner_id": deal.owner_id,
        "amount": str(deal.amount),
        "currency": deal.currency,
        **extra,
    }


def _require_lost_reason(stage: Stage, reason: str | None) -> None:
    if stage.kind == "lost" and not (reason or "").strip():
        raise ValidationError(
            f"a deal moved to the lost stage '{stage.name}' needs a lost_reason",
            field="lost_reason",
            key="error.deal_lost_reason",
        )


def create_deal(session: Session, *, actor: Actor, data: DealCreate) -> Deal:
    owner_id = data.owner_id if data.owner_id is not None else actor.user_id
    access.require_edit(session, actor, "deals:write", owner_id, what="the new deal")
    if data.customer_id is None and data.company_id is None:
        raise ValidationError("a deal needs a customer_id or a company_id", field="customer_id")
    customer_id = _check_links(session, customer_id=data.customer_id, company_id=data.company_id, owner_id=owner_id)
    if data.stage_id is not None:
        stage = pipelines.get_stage(session, data.stage_id)
        if data.pipeline_id is not None and stage.pipeline_id != data.pipeline_id:
            raise _other_pipeline(stage, data.pipeline_id)
    else:
        pipeline = (
            pipelines.get_pipeline(session, data.pipeline_id)
            if data.pipeline_id is not None
            else pipelines.default_pipeline(session)
        )
        stage = pipelines.stages_of(session, pipeline.id)[0]
    _require_lost_reason(stage, data.lost_reason)
    attributes = custom_fields.check_values(session, "deal", data.attributes)
    deal = Deal(
        name=data.name,
        pipeline_id=stage.pipeline_id,
        stage_id=stage.id,
        customer_id=customer_id,
        company_id=data.company_id,
        amount=data.amount,
        currency=data.currency,
        probability=data.probability if data.probability is not None else stage.probability,
        expected_close_date=data.expected_close_date,
        owner_id=owner_id,
        lost_reason=data.lost_reason,
        closed_at=utcnow() if stage.kind != "open" else None,
        attributes=attributes,
    )
    session.add(deal)
    session.flush()
    session.add(DealStageChange(deal_id=deal.id, to_stage_id=stage.id, actor_user_id=actor.user_id, actor=actor.label))
    audit.record(
        session,
        actor=actor,
        action="deal.create",
        entity_type="deal",
        entity_id=deal.id,
        customer_id=deal.customer_id,
        summary=deal.name,
    )
    emit(session, "deal.created", _payload(deal), customer_id=deal.customer_id, origin=actor.origin)
    return deal


def update_deal(
    session: Session, *, actor: Actor, deal_id: int, data: DealUpdate, expected_version: int | None
) -> Deal:
    deal = get_deal(session, deal_id)
    check_version(deal.version, if_match=expected_version, body=data.version)
    access.require_edit(session, actor, "deals:write", deal.owner_id, what=f"deal {deal.id}")
    values = data.model_dump(exclude_unset=True, exclude={"version"})
    if "name" in values and values["name"] is None:
        raise ValidationError("a deal's name cannot be emptied", field="name")
    for name in ("amount", "currency", "probability"):
        if name in values and values[name] is None:
            raise ValidationError(f"{name} cannot be emptied", field=name)
    if "owner_id" in values:
        # A rep hands a deal only to someone whose deals they may edit (themselves or a teammate).
        access.require_edit(session, actor, "deals:write", values["owner_id"], what="the deal's new owner")
    customer_id = _check_links(
        session,
        customer_id=values.get("customer_id"),
        company_id=values.get("company_id"),
        owner_id=values.get("owner_id"),
    )
    if "customer_id" in values:
        values["customer_id"] = customer_id
    if values.get("attributes") is None:
        values.pop("attributes", None)
    else:
        values["attributes"] = custom_fields.check_values(session, "deal", values["attributes"])
    after_customer = values.get("customer_id", deal.customer_id)
    after_company = values.get("company_id", deal.company_id)
    if after_customer is None and after_company is None:
        raise ValidationError("a deal needs a customer_id or a company_id", field="customer_id")
    diff = audit.apply_changes(session, deal, values, actor=actor, entity_type="deal", customer_id=deal.customer_id)
    if diff:
        emit(
            session,
            "deal.updated",
            _payload(deal, changed=sorted(diff)),
            customer_id=deal.customer_id,
            origin=actor.origin,
        )
    return deal


def _other_pipeline(stage: Stage, pipeline_id: int) -> ValidationError:
    return ValidationError(
        f"stage {stage.id} ('{stage.name}') belongs to pipeline {stage.pipeline_id}, not to the deal's pipeline "
        f"{pipeline_id}; choose a stage of pipeline {pipeline_id}",
        field="stage_id",
        key="error.deal_other_pipeline",
        params={"stage": stage.name},
    )


def move_deal(
    session: Session,
    *,
    actor: Actor,
    deal_id: int,
    stage_id: int,
    lost_reason: str | None = None,
    expected_version: int | None = None,
    body_version: int | None = None,
) -> Deal:
    """Move the deal to ``stage_id`` (a stage of its own pipeline), keep the move in its history, and emit
    ``deal.stage_changed`` plus ``deal.won`` / ``deal.lost`` when it closes. Moving to its own stage changes
    nothing."""
    deal = get_deal(session, deal_id)
    check_version(deal.version, if_match=expected_version, body=body_version)
    access.require_edit(session, actor, "deals:write", deal.owner_id, what=f"deal {deal.id}")
    stage = session.get(Stage, stage_id)
    if stage is None:
        raise ValidationError(f"stage {stage_id} does not exist", field="stage_id")
    if stage.pipeline_id != deal.pipeline_id:
        raise _other_pipeline(stage, deal.pipeline_id)
    if stage.id == deal.stage_id:
        return deal
    _require_lost_reason(stage, lost_reason)
    before = session.get(Stage, deal.stage_id)
    from_id = deal.stage_id
    deal.stage_id = stage.id
    # The stage's probability replaces the deal's; a rep adjusts it afterwards when they know better.
    deal.probability = stage.probability
    if stage.kind == "lost":
        deal.lost_reason = (lost_reason or "").strip()
    else:
        deal.lost_reason = None
    deal.closed_at = utcnow() if stage.kind != "open" else None
    session.flush()
    session.add(
        DealStageChange(
            deal_id=deal.id, from_stage_id=from_id, to_stage_id=stage.id, actor_user_id=actor.user_id, actor=actor.label
        )
    )
    audit.record(
        session,
        actor=actor,
        action="deal.move",
        entity_type="deal",
        entity_id=deal.id,
        customer_id=deal.customer_id,
        details={"stage_id": [from_id, stage.id], "lost_reason": [None, deal.lost_reason]},
        summary=f"{before.name if before else from_id} → {stage.name}",
    )
    payload = _payload(deal, from_stage_id=from_id, to_stage_id=stage.id, stage_kind=stage.kind)
    emit(session, "deal.stage_changed", payload, customer_id=deal.customer_id, origin=actor.origin)
    if stage.kind in ("won", "lost"):
        extra = {"lost_reason": deal.lost_reason} if stage.kind == "lost" else {}
        emit(session, f"deal.{stage.kind}", {**payload, **extra}, customer_id=deal.customer_id, origin=actor.origin)
    return deal


def delete_deal(session: Session, *, actor: Actor, deal_id: int, expected_version: int | None) -> None:
    deal = get_deal(session, deal_id)
    check_version(deal.version, if_match=expected_version)
    access.require_edit(session, actor, "deals:write", deal.owner_id, what=f"deal {deal.id}")
    audit.record(
        session,
        actor=actor,
        action="deal.delete",
        entity_type="deal",
        entity_id=deal.id,
        customer_id=deal.customer_id,
        details={name: audit._plain(getattr(deal, name)) for name in _FIELDS},
        summary=deal.name,
    )
    emit(session, "deal.deleted", _payload(deal), customer_id=deal.customer_id, origin=actor.origin)
    session.delete(deal)
    session.flush()


def history(session: Session, deal_id: int) -> list[DealStageChange]:
    """The deal's moves, oldest first (the first row is its creation)."""
    return list(
        session.scalars(select(DealStageChange).where(DealStageChange.deal_id == deal_id).order_by(DealStageChange.id))
    )


def require_read(actor: Actor) -> None:
    require(actor, "deals:read")
