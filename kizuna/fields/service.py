"""Custom fields: their definitions (create, change, delete) and the typed check of the values they describe.

A definition is one row of ``custom_fields``; its values are typed keys of the record's ``attributes``
(``attributes.<key>``). Every write of a customer, company or deal passes its attributes through
``check_values``, so a number field holds a JSON number, a date an ISO date, a user field an existing user's id,
whichever edge (API, form, import) wrote it.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.models import User
from kizuna.auth.permissions import Actor, require
from kizuna.db import check_version
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.fields.models import ENTITIES as ENTITIES  # what a field may belong to, for the forms
from kizuna.fields.models import TYPES as TYPES  # the types a field may have, for the forms
from kizuna.fields.models import CustomField
from kizuna.fields.schemas import CustomFieldCreate, CustomFieldUpdate, RuleError, check_rules

PREFIX = "attributes."


def definitions(session: Session, entity: str | None = None) -> list[CustomField]:
    """The fields of ``entity`` (every entity's when None), in form order."""
    query = select(CustomField).order_by(CustomField.entity, CustomField.position, CustomField.id)
    if entity is not None:
        query = query.where(CustomField.entity == entity)
    return list(session.scalars(query))


def get_field(session: Session, field_id: int) -> CustomField:
    found = session.get(CustomField, field_id)
    if found is None:
        raise NotFound(f"custom field {field_id} not found")
    return found


def create_field(session: Session, *, actor: Actor, data: CustomFieldCreate) -> CustomField:
    require(actor, "fields:manage")
    taken = session.scalar(select(CustomField.id).where(CustomField.entity == data.entity, CustomField.key == data.key))
    if taken is not None:
        raise Conflict(f"{data.entity} already has a field attributes.{data.key}", field="key")
    field = CustomField(**data.model_dump())
    session.add(field)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # a concurrent create of the same key
        raise Conflict(f"{data.entity} already has a field attributes.{data.key}", field="key") from exc
    audit.record(
        session,
        actor=actor,
        action="custom_field.create",
        entity_type="custom_field",
        entity_id=field.id,
        summary=f"{field.entity} attributes.{field.key} ({field.type})",
    )
    return field


def update_field(
    session: Session, *, actor: Actor, field_id: int, data: CustomFieldUpdate, expected_version: int | None
) -> CustomField:
    require(actor, "fields:manage")
    field = get_field(session, field_id)
    check_version(field.version, if_match=expected_version, body=data.version)
    values = data.model_dump(exclude_unset=True, exclude={"version"})
    for name in ("label", "required", "position"):
        if name in values and values[name] is None:
            raise ValidationError(f"{name} cannot be emptied", field=name)
    if "choices" in values and values["choices"] is None:
        values["choices"] = []
    merged = {name: values.get(name, getattr(field, name)) for name in ("choices", "min_value", "max_value")}
    try:
        check_rules(
            field.type,
            merged["choices"],
            merged["min_value"],
            merged["max_value"],
            values.get("max_length", field.max_length),
        )
    except RuleError as exc:
        raise ValidationError(str(exc), field=exc.field) from exc
    audit.apply_changes(session, field, values, actor=actor, entity_type="custom_field")
    return field


def delete_field(session: Session, *, actor: Actor, field_id: int, expected_version: int | None) -> None:
    """Remove the definition; the values stay in each record's attributes, untyped and unchecked from then on."""
    require(actor, "fields:manage")
    field = get_field(session, field_id)
    check_version(field.version, if_match=expected_version)
    audit.record(
        session,
        actor=actor,
        action="custom_field.delete",
        entity_type="custom_field",
        entity_id=field.id,
        summary=f"{field.entity} attributes.{field.key} ({field.type})",
    )
    session.delete(field)
    session.flush()


# --- values ----------------------------------------------------------------------------------------------


def label_of(field: Any) -> str:
    return f"{PREFIX}{field.key} ({field.label})"


def _invalid(field: Any, message: str) -> ValidationError:
    return ValidationError(
        f"{label_of(field)}: {message}",
        field=f"{PREFIX}{field.key}",
        key="error.custom_field",
        params={"field": field.label, "problem": message},
    )


def _number(field: Any, raw: Any) -> int | float:
    if isinstance(raw, bool):
        raise _invalid(field, f"{raw!r} is not a number")
    if isinstance(raw, (int, float)):
        value: Any = raw
    elif isinstance(raw, str):
        try:
            value = Decimal(raw.strip().replace(",", ""))
        except InvalidOperation as exc:
            raise _invalid(field, f"'{raw}' is not a number") from exc
        if not value.is_finite():
            raise _invalid(field, f"'{raw}' is not a number")
        value = int(value) if value == value.to_integral_value() else float(value)
    else:
        raise _invalid(field, f"{raw!r} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _invalid(field, f"{raw!r} is not a number")
    if isinstance(value, int) and abs(value) > 2**53:
        raise _invalid(field, f"{raw} is too large")  # beyond what a JSON number holds exactly
    if field.min_value is not None and value < field.min_value:
        raise _invalid(field, f"{value} is less than the minimum {field.min_value:g}")
    if field.max_value is not None and value > field.max_value:
        raise _invalid(field, f"{value} is more than the maximum {field.max_value:g}")
    return value


def _text(field: Any, raw: Any) -> str:
    if not isinstance(raw, str):
        raise _invalid(field, f"{raw!r} is not text")
    value = raw.strip()
    if field.max_length is not None and len(value) > field.max_length:
        raise _invalid(field, f"longer than {field.max_length} characters")
    return value


def _date(field: Any, raw: Any) -> str:
    if not isinstance(raw, str):
        raise _invalid(field, f"{raw!r} is not a date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(raw.strip().replace("/", "-")).isoformat()
    except ValueError as exc:
        raise _invalid(field, f"'{raw}' is not a date (YYYY-MM-DD)") from exc


def _url(field: Any, raw: Any) -> str:
    value = _text(field, raw)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or re.search(r"\s", value):
        raise _invalid(field, f"'{raw}' is not a web address (http:// or https://)")
    return value


def _choice(field: Any, raw: Any) -> str:
    if not isinstance(raw, str) or raw.strip() not in field.choices:
        raise _invalid(field, f"{raw!r} is not one of {', '.join(field.choices)}")
    return raw.strip()


def _multi(field: Any, raw: Any) -> list[str]:
    # A form or a CSV cell sends the choices as one text, separated by commas.
    items = [p for p in (s.strip() for s in raw.split(",")) if p] if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise _invalid(field, f"{raw!r} is not a list of choices")
    chosen = [_choice(field, item) for item in items]
    return [c for c in field.choices if c in chosen]  # the definition's order, each once


def _user(field: Any, raw: Any, exists: Callable[[int], bool]) -> int:
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw < 2**31:
        raise _invalid(field, f"{raw!r} is not a user id")
    if not exists(raw):
        raise _invalid(field, f"there is no user {raw}")
    return raw


@dataclass(frozen=True)
class FieldRule:
    """A definition as plain data: what an import's parser processes check rows against (no database there)."""

    key: str
    label: str
    type: str
    required: bool = False
    choices: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    max_length: int | None = None


def rules_of(session: Session, entity: str) -> tuple[FieldRule, ...]:
    return tuple(
        FieldRule(f.key, f.label, f.type, f.required, tuple(f.choices or ()), f.min_value, f.max_value, f.max_length)
        for f in definitions(session, entity)
    )


def user_ids(session: Session) -> frozenset[int]:
    """Every user's id (a user field's values are checked against them where no session is at hand)."""
    return frozenset(session.scalars(select(User.id)))


def typed_value(session: Session, field: CustomField, raw: Any) -> Any:
    """``raw`` as the field stores it (a JSON number, an ISO date...), or a ValidationError naming the field."""
    return typed(field, raw, user_exists=lambda user_id: session.get(User, user_id) is not None)


def typed(field: Any, raw: Any, *, user_exists: Callable[[int], bool]) -> Any:
    """``typed_value`` of a definition or a FieldRule, with the check of a user id given."""
    match field.type:
        case "number":
            return _number(field, raw)
        case "date":
            return _date(field, raw)
        case "choice":
            return _choice(field, raw)
        case "multi_choice":
            return _multi(field, raw)
        case "url":
            return _url(field, raw)
        case "user":
            return _user(field, raw, user_exists)
    return _text(field, raw)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def errors_of(
    session: Session, entity: str, attributes: Mapping[str, Any] | None, *, fields: list[CustomField] | None = None
) -> tuple[dict[str, Any], dict[str, ValidationError]]:
    """The new ``attributes`` with each custom field's value typed, and each field's problem (a form shows
    every one beside its field). Keys no field defines pass as given; an empty value (null, "", []) removes
    the key, and is a problem for a required field."""
    fields = definitions(session, entity) if fields is None else fields
    out = dict(attributes or {})
    problems: dict[str, ValidationError] = {}
    for field in fields:
        raw = out.get(field.key)
        if _empty(raw):
            out.pop(field.key, None)
            if field.required:
                problems[field.key] = _invalid(field, "is required")
            continue
        try:
            out[field.key] = typed_value(session, field, raw)
        except ValidationError as exc:
            problems[field.key] = exc
    return out, problems


def check_values(
    session: Session, entity: str, attributes: Mapping[str, Any] | None, *, fields: list[CustomField] | None = None
) -> dict[str, Any]:
    """The record's new ``attributes`` with each custom field's value typed (see ``errors_of``); the first
    problem raised as a ValidationError naming ``attributes.<key>``, so nothing is written."""
    out, problems = errors_of(session, entity, attributes, fields=fields)
    if problems:
        raise next(iter(problems.values()))
    return out
