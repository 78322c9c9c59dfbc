"""API of saved views (``/api/v1/views``): the same service as the list page's views."""

from __future__ import annotations

from fastapi import APIRouter, Response

from kizuna.customers import saved_views
from kizuna.customers.models import SavedView
from kizuna.customers.schemas import ListName, SavedViewCreate, SavedViewRead
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/views", tags=["views"])


@router.get("", response_model=list[SavedViewRead])
def list_views(session: DB, actor: APIActor, list_name: ListName = "customers") -> list[SavedView]:
    """The caller's own saved views of a list, by name."""
    return saved_views.list_views(session, actor=actor, list_name=list_name)


@router.post("", response_model=SavedViewRead, status_code=201)
def create_view(data: SavedViewCreate, response: Response, session: DB, actor: APIActor) -> SavedView:
    """Save a named list state: ``params`` are the list form's fields (``q``, ``tag``, ``prefecture``,
    ``lifecycle_stage``, ``email_consent``, ``company_id``, ``mine``, ``status``, ``sort``), ``columns`` the
    visible columns."""
    view = saved_views.create_view(session, actor=actor, data=data)
    session.commit()
    response.headers["Location"] = f"/api/v1/views/{view.id}"
    return view


@router.get("/{view_id}", response_model=SavedViewRead)
def get_view(view_id: int, session: DB, actor: APIActor) -> SavedView:
    return saved_views.get_view(session, actor=actor, view_id=view_id)


@router.put("/{view_id}/default", response_model=SavedViewRead)
def make_default(view_id: int, session: DB, actor: APIActor) -> SavedView:
    """The list opens with this view (the caller's previous default stops being one)."""
    view = saved_views.set_default(session, actor=actor, view_id=view_id)
    session.commit()
    return view


@router.delete("/{view_id}/default", response_model=SavedViewRead)
def unmake_default(view_id: int, session: DB, actor: APIActor) -> SavedView:
    """The list opens unfiltered again."""
    view = saved_views.set_default(session, actor=actor, view_id=view_id, default=False)
    session.commit()
    return view


@router.delete("/{view_id}", status_code=204)
def delete_view(view_id: int, session: DB, actor: APIActor) -> Response:
    saved_views.delete_view(session, actor=actor, view_id=view_id)
    session.commit()
    return Response(status_code=204)
