"""Custom fields in the UI's forms and pages, rendered from their definitions (kizuna/fields).

A form shows one input per field of its record (``attributes.<key>``), after its own fields; what the user
typed goes to the service as the record's attributes, so the service's typed check is the only rule and its
error lands beside the field. Forms call ``names``, ``form_values``, ``attributes_from`` and render
``_custom_fields.html``; nothing here knows which record it serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from kizuna.customers.edits import assignable_users
from kizuna.fields import service as custom_fields
from kizuna.web.ui_base import env

if TYPE_CHECKING:
    from kizuna.fields.models import CustomField

PREFIX = custom_fields.PREFIX


def definitions(session: Session, entity: str) -> list[CustomField]:
    return custom_fields.definitions(session, entity)


def names(fields: list[CustomField]) -> tuple[str, ...]:
    """The form field names of ``fields`` (``attributes.<key>``)."""
    return tuple(PREFIX + f.key for f in fields)


def shown(value: Any) -> str:
    """A stored value as a form shows it (a list of choices joined by commas, 12.0 as 12)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def form_values(attributes: Mapping[str, Any] | None, fields: list[CustomField]) -> dict[str, str]:
    """The fields' values of a record, as form text."""
    attributes = attributes or {}
    return {PREFIX + f.key: shown(attributes.get(f.key)) for f in fields}


def attributes_from(
    values: Mapping[str, str], present: set[str], fields: list[CustomField], current: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The record's new attributes: ``current`` with each field the form sent set to its text (empty removes
    it); None when the form sent none of them (a quick edit), so the attributes stay as they are."""
    sent = [f for f in fields if PREFIX + f.key in present or f.type == "multi_choice" and _multi_sent(present, f)]
    if not sent:
        return None
    out = dict(current or {})
    for field in sent:
        # A multi-choice field arrives as checked boxes, one value per line (read_form joins them).
        raw = values.get(PREFIX + field.key, "").replace("\n", ",").strip()
        out[field.key] = raw or None
    return out


def _multi_sent(present: set[str], field: CustomField) -> bool:
    # Checkboxes send nothing when none is checked; the form's marker says the field was on it.
    return f"{PREFIX}{field.key}.sent" in present


def context(session: Session, fields: list[CustomField]) -> dict[str, Any]:
    """What ``_custom_fields.html`` needs beside the fields: the users a user field offers."""
    users = assignable_users(session) if any(f.type == "user" for f in fields) else []
    return {"custom_fields": fields, "custom_users": users}


def page_context(session: Session, entity: str) -> dict[str, Any]:
    """What a detail page needs to show a record's custom fields (``cf.values``)."""
    fields = definitions(session, entity)
    users = dict(assignable_users(session)) if any(f.type == "user" for f in fields) else {}
    return {"custom_fields": fields, "custom_user_names": users}


def label(field: CustomField, lang: str) -> str:
    return field.label_en if lang == "en" and field.label_en else field.label


def display(field: CustomField, value: Any, users: Mapping[int, str] | None = None) -> str:
    """A stored value as a page shows it (a user by name)."""
    if field.type == "user" and users is not None and isinstance(value, int):
        return users.get(value, f"#{value}")
    return shown(value)


env.globals["custom_field_label"] = label
env.filters["same_pairs"] = lambda items: [(item, item) for item in items]
env.globals["custom_field_display"] = display
