"""/api/v1/custom-fields: thin handlers over the custom field definitions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from kizuna.auth.permissions import require
from kizuna.fields import service
from kizuna.fields.models import CustomField
from kizuna.fields.schemas import CustomFieldCreate, CustomFieldRead, CustomFieldUpdate, Entity
from kizuna.web.api import require_if_match, require_precondition, with_etag
from kizuna.web.deps import DB, APIActor

IfMatch = Annotated[str | None, Header()]

router = APIRouter(prefix="/custom-fields", tags=["custom fields"])


@router.get("", response_model=list[CustomFieldRead])
def list_fields(session: DB, actor: APIActor, entity: Annotated[Entity | None, Query()] = None) -> list[CustomField]:
    """The custom fields of customers, companies and deals (``?entity=deal`` for one), in form order."""
    require(actor, "customers:read")
    return service.definitions(session, entity)


@router.post("", response_model=CustomFieldRead, status_code=201)
def create_field(data: CustomFieldCreate, response: Response, session: DB, actor: APIActor) -> CustomField:
    """Add a field: its values are ``attributes.<key>`` of the records, checked against its type and rules."""
    field = service.create_field(session, actor=actor, data=data)
    session.commit()
    with_etag(response, field.version)
    response.headers["Location"] = f"/api/v1/custom-fields/{field.id}"
    return field


@router.get("/{field_id}", response_model=CustomFieldRead)
def get_field(field_id: int, response: Response, session: DB, actor: APIActor) -> CustomField:
    require(actor, "customers:read")
    field = service.get_field(session, field_id)
    with_etag(response, field.version)
    return field


@router.patch("/{field_id}", response_model=CustomFieldRead)
def update_field(
    field_id: int, data: CustomFieldUpdate, response: Response, session: DB, actor: APIActor, if_match: IfMatch = None
) -> CustomField:
    """Change a field's label, rules or order; its entity, key and type are fixed."""
    version = require_precondition(if_match, data.version)
    field = service.update_field(session, actor=actor, field_id=field_id, data=data, expected_version=version)
    session.commit()
    with_etag(response, field.version)
    return field


@router.delete("/{field_id}", status_code=204)
def delete_field(field_id: int, session: DB, actor: APIActor, if_match: IfMatch = None) -> Response:
    """Remove the definition. Stored values stay in each record's attributes, no longer checked or typed."""
    service.delete_field(session, actor=actor, field_id=field_id, expected_version=require_if_match(if_match))
    session.commit()
    return Response(status_code=204)
