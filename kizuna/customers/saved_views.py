"""Saved views: a user's named filter + sort + visible columns of a list, applied again with one click.

A view belongs to one user and is seen and deleted only by them. Its parameters are the list form's own
fields (``CUSTOMER_FORM_FIELDS`` plus ``sort``), checked against the customer filter set when saved, so a view
that was accepted always applies; ``mine`` stays "the viewer's customers" rather than a fixed user id.

Each list that has views is a ``ListKind`` in ``list_kind`` (customers, deals): its form fields, its columns and
how its parameters are checked; the storage, the privacy rule, the default view and the audit are shared.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.customers.filters import CUSTOMER_FILTERS, CUSTOMER_FORM_FIELDS, customer_form_params
from kizuna.customers.models import SavedView
from kizuna.customers.schemas import SavedViewCreate
from kizuna.errors import Conflict, NotFound, ValidationError

# The columns the customer list can show, in display order (the name is always shown), and those it shows
# when neither the user nor an applied view chose.
CUSTOMER_COLUMNS = (
    "email",
    "phone",
    "company",
    "tags",
    "lifecycle_stage",
    "prefecture",
    "owner",
    "created_at",
    "updated_at",
)
DEFAULT_CUSTOMER_COLUMNS = ("email", "phone", "company", "tags", "created_at")
MAX_VIEWS = 100  # per user and list: the list page shows them all
_MAX_VALUE = 300


# A custom field's column (``attributes.<key>``); the list shows it while the field exists.
CUSTOM_COLUMN = re.compile(r"attributes\.[a-z][a-z0-9_]{0,63}")


def visible_columns(
    chosen: Sequence[str] | None,
    *,
    default: Sequence[str] = DEFAULT_CUSTOMER_COLUMNS,
    known: Sequence[str] = CUSTOMER_COLUMNS,
) -> list[str]:
    """The known columns among ``chosen``, in display order (unknown ones are dropped), custom fields' columns
    after them in the order chosen; ``default`` for None."""
    if chosen is None:
        return list(default)
    wanted = set(chosen)
    return [c for c in known if c in wanted] + [c for c in dict.fromkeys(chosen) if CUSTOM_COLUMN.fullmatch(c)]


@dataclass(frozen=True)
class ListKind:
    """A list that has saved views: who reads it, its form's fields, its columns, how a view's params are checked."""

    permission: str
    fields: tuple[str, ...]
    columns: tuple[str, ...]
    default_columns: tuple[str, ...]
    check: Callable[[dict[str, str], int], None]


def _check_customers(params: dict[str, str], user_id: int) -> None:
    CUSTOMER_FILTERS.apply(CUSTOMER_FILTERS.select(), customer_form_params(params, user_id=user_id))
    CUSTOMER_FILTERS.sort_key(params.get("sort"))


def list_kind(list_name: str) -> ListKind:
    """The list ``list_name`` (customers, deals); the deal list's rules live with the sales filters."""
    if list_name == "customers":
        return ListKind(
            "customers:read", tuple(CUSTOMER_FORM_FIELDS), CUSTOMER_COLUMNS, DEFAULT_CUSTOMER_COLUMNS, _check_customers
        )
    if list_name == "deals":
        from kizuna.sales.filters import DEAL_COLUMNS, DEAL_FORM_FIELDS, check_deal_params, deal_form_params

        return ListKind(
            "deals:read",
            tuple(DEAL_FORM_FIELDS),
            DEAL_COLUMNS,
            DEAL_COLUMNS,
            lambda params, _user: check_deal_params(deal_form_params(params)),
        )
    raise ValidationError(f"no list named '{list_name}'; choose customers or deals", field="list_name")


def _own_user(actor: Actor, list_name: str = "customers") -> int:
    require(actor, list_kind(list_name).permission)
    if actor.user_id is None:
        raise ValidationError("saved views belong to a user; sign in as one", key="error.saved_view_no_user")
    return actor.user_id


def list_views(session: Session, *, actor: Actor, list_name: str = "customers") -> list[SavedView]:
    """The actor's own views of ``list_name``, by name."""
    user_id = _own_user(actor, list_name)
    query = (
        select(SavedView)
        .where(SavedView.user_id == user_id, SavedView.list_name == list_name)
        .order_by(SavedView.name, SavedView.id)
    )
    return list(session.scalars(query))


def get_view(session: Session, *, actor: Actor, view_id: int) -> SavedView:
    """One of the actor's views; another user's view is not found (views are private)."""
    user_id = _own_user(actor)
    view = session.get(SavedView, view_id)
    if view is None or view.user_id != user_id:
        raise NotFound(f"saved view {view_id} not found")
    return view


def _checked_params(params: dict[str, str], user_id: int, kind: ListKind) -> dict[str, str]:
    clean = {k: v.strip() for k, v in params.items() if v and v.strip()}
    for name, value in clean.items():
        # ``attributes.<key>[__op]``: a custom field's filter, checked by the filter set below.
        if name not in kind.fields and name != "sort" and not name.startswith("attributes."):
            allowed = ", ".join(sorted((*kind.fields, "sort")))
            raise ValidationError(f"unknown list field '{name}'; allowed: {allowed}", field="params")
        if len(value) > _MAX_VALUE:
            raise ValidationError(f"'{name}' is longer than {_MAX_VALUE} characters", field="params")
    # Building the query checks every value (a bad date, an unknown sort) now rather than when applied.
    kind.check(clean, user_id)
    return clean


def create_view(session: Session, *, actor: Actor, data: SavedViewCreate) -> SavedView:
    """Save the actor's list state under a name; the name is unique per user and list."""
    user_id = _own_user(actor, data.list_name)
    kind = list_kind(data.list_name)
    chosen = list(kind.default_columns) if data.columns is None else data.columns
    unknown = [c for c in chosen if c not in kind.columns and not CUSTOM_COLUMN.fullmatch(c)]
    if unknown:
        raise ValidationError(f"unknown column '{unknown[0]}'; allowed: {', '.join(kind.columns)}", field="columns")
    params = _checked_params(data.params, user_id, kind)
    taken = session.scalar(
        select(SavedView.id).where(
            SavedView.user_id == user_id, SavedView.list_name == data.list_name, SavedView.name == data.name
        )
    )
    if taken is not None:
        raise Conflict(
            f"you already have a view named '{data.name}'",
            field="name",
            key="error.saved_view_name_taken",
            params={"value": data.name},
        )
    if len(list_views(session, actor=actor, list_name=data.list_name)) >= MAX_VIEWS:
        raise ValidationError(f"at most {MAX_VIEWS} saved views per list", field="name")
    view = SavedView(
        user_id=user_id,
        list_name=data.list_name,
        name=data.name,
        params=params,
        columns=visible_columns(chosen, known=kind.columns),
    )
    session.add(view)
    # The same name saved at the same moment by another request fails here on the unique constraint, which
    # the edges answer as a conflict.
    session.flush()
    # A view is the user's own preference: audited, but no outbox message (nothing outside reacts to it).
    audit.record(
        session, actor=actor, action="saved_view.create", entity_type="saved_view", entity_id=view.id, summary=view.name
    )
    return view


def delete_view(session: Session, *, actor: Actor, view_id: int) -> None:
    """Delete one of the actor's own views."""
    view = get_view(session, actor=actor, view_id=view_id)
    audit.record(
        session, actor=actor, action="saved_view.delete", entity_type="saved_view", entity_id=view.id, summary=view.name
    )
    session.delete(view)
    session.flush()


def set_default(session: Session, *, actor: Actor, view_id: int, default: bool = True) -> SavedView:
    """Make one of the actor's views the one their list opens with (or stop it being that)."""
    view = get_view(session, actor=actor, view_id=view_id)
    if default:
        for other in list_views(session, actor=actor, list_name=view.list_name):
            if other.is_default and other.id != view.id:
                other.is_default = False
    view.is_default = default
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="saved_view.default" if default else "saved_view.undefault",
        entity_type="saved_view",
        entity_id=view.id,
        summary=view.name,
    )
    return view


def default_view(session: Session, *, actor: Actor, list_name: str = "customers") -> SavedView | None:
    """The view the actor's list opens with, if they chose one."""
    return next((v for v in list_views(session, actor=actor, list_name=list_name) if v.is_default), None)
