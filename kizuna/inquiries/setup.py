"""Categories and macros (saved replies): managed by managers and admins (``inquiries:manage``), read by all."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.inquiries.models import InquiryCategory, InquiryMacro
from kizuna.inquiries.schemas import CategoryIn, MacroIn
from kizuna.sales.models import Team


def list_categories(session: Session, *, active_only: bool = False) -> list[InquiryCategory]:
    query = select(InquiryCategory).order_by(InquiryCategory.name)
    if active_only:
        query = query.where(InquiryCategory.active.is_(True))
    return list(session.scalars(query))


def _check_category(session: Session, data: CategoryIn, own_id: int | None = None) -> None:
    taken = session.scalar(select(InquiryCategory.id).where(InquiryCategory.name == data.name.strip()))
    if taken is not None and taken != own_id:
        raise Conflict(f"a category named '{data.name.strip()}' already exists", field="name")
    if data.team_id is not None and session.get(Team, data.team_id) is None:
        raise ValidationError(f"team {data.team_id} does not exist", field="team_id")


def create_category(session: Session, *, actor: Actor, data: CategoryIn) -> InquiryCategory:
    require(actor, "inquiries:manage")
    _check_category(session, data)
    category = InquiryCategory(
        name=data.name.strip(), name_en=(data.name_en or "").strip() or None, team_id=data.team_id, active=data.active
    )
    session.add(category)
    session.flush()
    audit.record(
        session, actor=actor, action="inquiry_category.create", entity_type="inquiry_category",
        entity_id=category.id, summary=category.name,
    )  # fmt: skip
    return category


def update_category(session: Session, *, actor: Actor, category_id: int, data: CategoryIn) -> InquiryCategory:
    require(actor, "inquiries:manage")
    category = session.get(InquiryCategory, category_id)
    if category is None:
        raise NotFound(f"category {category_id} not found")
    _check_category(session, data, own_id=category.id)
    values = {
        "name": data.name.strip(), "name_en": (data.name_en or "").strip() or None, "team_id": data.team_id,
        "active": data.active,
    }  # fmt: skip
    audit.apply_changes(session, category, values, actor=actor, entity_type="inquiry_category")
    return category


def list_macros(session: Session) -> list[InquiryMacro]:
    return list(session.scalars(select(InquiryMacro).order_by(InquiryMacro.name)))


def _check_macro(session: Session, data: MacroIn, own_id: int | None = None) -> None:
    taken = session.scalar(select(InquiryMacro.id).where(InquiryMacro.name == data.name.strip()))
    if taken is not None and taken != own_id:
        raise Conflict(f"a macro named '{data.name.strip()}' already exists", field="name")
    if data.category_id is not None and session.get(InquiryCategory, data.category_id) is None:
        raise ValidationError(f"category {data.category_id} does not exist", field="category_id")


def create_macro(session: Session, *, actor: Actor, data: MacroIn) -> InquiryMacro:
    require(actor, "inquiries:manage")
    _check_macro(session, data)
    macro = InquiryMacro(name=data.name.strip(), body=data.body, category_id=data.category_id)
    session.add(macro)
    session.flush()
    audit.record(
        session, actor=actor, action="inquiry_macro.create", entity_type="inquiry_macro", entity_id=macro.id,
        summary=macro.name,
    )  # fmt: skip
    return macro


def delete_macro(session: Session, *, actor: Actor, macro_id: int) -> None:
    require(actor, "inquiries:manage")
    macro = session.get(InquiryMacro, macro_id)
    if macro is None:
        raise NotFound(f"macro {macro_id} not found")
    audit.record(
        session, actor=actor, action="inquiry_macro.delete", entity_type="inquiry_macro", entity_id=macro.id,
        summary=macro.name,
    )  # fmt: skip
    session.delete(macro)
    session.flush()
