"""The deal, activity and task filters: one definition for the API lists, the UI list and exports.

``editable`` (deals) is resolved per viewer by ``scoped`` below, so "the deals I may change" means the same
rows in every list (see access.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.errors import ValidationError
from kizuna.fields.filters import custom_filters
from kizuna.fields.filters import form_params as custom_form_params
from kizuna.listing import ORDERED, TEXT, Filter, FilterSet
from kizuna.sales import access
from kizuna.sales.models import Activity, Deal, Task

_IDS = ("eq", "ne", "in", "isnull")

DEAL_FILTERS = FilterSet(
    model=Deal,
    fields={
        "id": Filter(Deal.id, "int", ORDERED),
        "name": Filter(Deal.name, "str", TEXT),
        "pipeline_id": Filter(Deal.pipeline_id, "int", ("eq", "in")),
        "stage_id": Filter(Deal.stage_id, "int", ("eq", "ne", "in")),
        "customer_id": Filter(Deal.customer_id, "int", _IDS),
        "company_id": Filter(Deal.company_id, "int", _IDS),
        "owner_id": Filter(Deal.owner_id, "int", _IDS),
        "amount": Filter(Deal.amount, "decimal", ORDERED),
        "currency": Filter(Deal.currency, "str", ("eq", "in")),
        "probability": Filter(Deal.probability, "int", ORDERED),
        "expected_close_date": Filter(Deal.expected_close_date, "date", ORDERED),
        "closed_at": Filter(Deal.closed_at, "datetime", ORDERED),
        "created_at": Filter(Deal.created_at, "datetime", ORDERED),
        "updated_at": Filter(Deal.updated_at, "datetime", ORDERED),
    },
    sorts={
        "id": Deal.id,
        "amount": Deal.amount,
        "expected_close_date": Deal.expected_close_date,
        "updated_at": Deal.updated_at,
    },
    default_sort="-id",
    custom=custom_filters("deal", Deal.attributes),
)

ACTIVITY_FILTERS = FilterSet(
    model=Activity,
    fields={
        "id": Filter(Activity.id, "int", ORDERED),
        "kind": Filter(Activity.kind, "str", ("eq", "ne", "in")),
        "customer_id": Filter(Activity.customer_id, "int", _IDS),
        "company_id": Filter(Activity.company_id, "int", _IDS),
        "deal_id": Filter(Activity.deal_id, "int", _IDS),
        "user_id": Filter(Activity.user_id, "int", _IDS),
        "occurred_at": Filter(Activity.occurred_at, "datetime", ORDERED),
    },
    sorts={"id": Activity.id, "occurred_at": Activity.occurred_at},
    default_sort="-occurred_at",
)

TASK_FILTERS = FilterSet(
    model=Task,
    fields={
        "id": Filter(Task.id, "int", ORDERED),
        "status": Filter(Task.status, "str", ("eq", "ne", "in")),
        "owner_id": Filter(Task.owner_id, "int", _IDS),
        "customer_id": Filter(Task.customer_id, "int", _IDS),
        "company_id": Filter(Task.company_id, "int", _IDS),
        "deal_id": Filter(Task.deal_id, "int", _IDS),
        "due_at": Filter(Task.due_at, "datetime", ORDERED),
        "remind_at": Filter(Task.remind_at, "datetime", ORDERED),
    },
    sorts={"id": Task.id, "due_at": Task.due_at},
    default_sort="id",
)

# The deal list's form (the UI list, its saved views and its export): each field mapped to a DEAL_FILTERS
# parameter (the API takes the parameter names themselves).
DEAL_FORM_FIELDS = {
    "pipeline_id": "pipeline_id",
    "owner_id": "owner_id",
    "stage_id": "stage_id",
    "close_from": "expected_close_date__gte",
    "close_to": "expected_close_date__lte",
    "amount_min": "amount__gte",
    "amount_max": "amount__lte",
    "editable": "editable",
}


# The deal list's columns (a saved view of deals keeps them all: the list shows each).
DEAL_COLUMNS = ("stage", "customer", "amount", "expected_close_date", "owner")


def deal_form_params(form: dict[str, str]) -> dict[str, str]:
    """The filter parameters of the deal list form's non-empty fields (``sort`` is passed through)."""
    params = {DEAL_FORM_FIELDS[k]: v for k, v in form.items() if k in DEAL_FORM_FIELDS and v}
    params.update(custom_form_params(form.keys(), form))
    if form.get("sort"):
        params["sort"] = form["sort"]
    return params


def check_deal_params(params: dict[str, str]) -> None:
    """Refuse what a deal list could not apply (a bad date, an unknown sort), naming the problem."""
    params = dict(params)
    sort = params.pop("sort", None)
    if str(params.pop("editable", "true")).lower() not in ("true", "false", "1", "0"):
        raise ValidationError("filter 'editable' expects true or false", field="editable")
    DEAL_FILTERS.apply(select(Deal), params)
    DEAL_FILTERS.sort_key(sort)


_EDITABLE = {Deal: ("deals:write", Deal.owner_id), Task: ("tasks:write", Task.owner_id)}


def scoped(
    session: Session, actor: Actor, query: Select[Any], params: dict[str, Any]
) -> tuple[Select[Any], dict[str, Any]]:
    """Resolve the per-viewer ``editable=true|false`` parameter into the role rule's condition.

    Returns the query with the condition and the remaining parameters for ``FilterSet.apply``.
    """
    params = dict(params)
    raw = params.pop("editable", None)
    if raw in (None, ""):
        return query, params
    model = query.column_descriptions[0]["entity"]
    if model not in _EDITABLE or str(raw).lower() not in ("true", "false", "1", "0"):
        raise ValidationError("filter 'editable' expects true or false", field="editable")
    permission, column = _EDITABLE[model]
    clause = access.editable_clause(session, actor, column, permission)
    return query.where(clause if str(raw).lower() in ("true", "1") else ~clause), params
