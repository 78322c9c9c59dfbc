"""An endpoint's page under /admin/webhooks: its subscriptions to domain events and its delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from starlette.responses import RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.errors import KizunaError
from kizuna.messaging import webhook_admin
from kizuna.web.deps import DB
from kizuna.web.forms import translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router, with_notice
from kizuna.webhooks import events, service

router = ui_router()


def _endpoint_page(
    request: Request,
    session: DB,
    viewer: Viewer,
    endpoint_id: int,
    *,
    error: str = "",
    status: int = 200,
    form: dict[str, object] | None = None,
    shown: str | None = None,
) -> Response:
    require(viewer.actor, webhook_admin.PERMISSION)
    endpoint = webhook_admin.get_endpoint(session, endpoint_id)
    return render(
        request,
        "webhooks/endpoint.html",
        viewer,
        status=status,
        endpoint=endpoint,
        subscriptions=service.list_subscriptions(session, actor=viewer.actor, endpoint_id=endpoint_id),
        deliveries=service.list_deliveries(
            session, actor=viewer.actor, endpoint_id=endpoint_id, status=shown or None, limit=100
        ),
        event_types=events.all_events(),
        statuses=service.STATUSES,
        shown=shown or "",
        error=error,
        form=form or {},
    )


def _back(endpoint_id: int, notice: str) -> Response:
    return with_notice(RedirectResponse(f"/admin/webhooks/endpoints/{endpoint_id}", status_code=303), notice)


@router.get("/admin/webhooks/endpoints/{endpoint_id}")
def endpoint_page(request: Request, session: DB, viewer: CurrentViewer, endpoint_id: int, status: str = "") -> Response:
    return _endpoint_page(request, session, viewer, endpoint_id, shown=status if status in service.STATUSES else "")


@router.post("/admin/webhooks/endpoints/{endpoint_id}/subscriptions")
def create_subscription(
    request: Request,
    session: DB,
    viewer: PostingViewer,
    endpoint_id: int,
    events: Annotated[list[str] | None, Form()] = None,
    include_backfill: Annotated[str, Form()] = "",
) -> Response:
    try:
        service.create_subscription(
            session, actor=viewer.actor, endpoint_id=endpoint_id, events=events or [],
            include_backfill=include_backfill == "1",
        )  # fmt: skip
        session.commit()
    except KizunaError as exc:
        session.rollback()
        if exc.status_code in (401, 403, 404):
            raise
        message = translate_error(translator(viewer.lang), viewer.lang, exc)
        form = {"events": events or [], "include_backfill": include_backfill == "1"}
        return _endpoint_page(request, session, viewer, endpoint_id, error=message, status=422, form=form)
    return _back(endpoint_id, "created")


@router.post("/admin/webhooks/subscriptions/{subscription_id}/active")
def toggle_subscription(
    session: DB, viewer: PostingViewer, subscription_id: int, active: Annotated[str, Form()] = ""
) -> Response:
    subscription = service.update_subscription(
        session, actor=viewer.actor, subscription_id=subscription_id, active=active == "1"
    )
    session.commit()
    return _back(subscription.endpoint_id, "saved")


@router.post("/admin/webhooks/subscriptions/{subscription_id}/delete")
def delete_subscription(session: DB, viewer: PostingViewer, subscription_id: int) -> Response:
    subscription = service.get_subscription(session, actor=viewer.actor, subscription_id=subscription_id)
    endpoint_id = subscription.endpoint_id
    service.delete_subscription(session, actor=viewer.actor, subscription_id=subscription_id)
    session.commit()
    return _back(endpoint_id, "deleted")


@router.post("/admin/webhooks/deliveries/{delivery_id}/retry")
def retry_delivery(request: Request, session: DB, viewer: PostingViewer, delivery_id: int) -> Response:
    view = service.get_delivery(session, actor=viewer.actor, delivery_id=delivery_id)
    try:
        service.retry_delivery(session, actor=viewer.actor, delivery_id=delivery_id)
        session.commit()
    except KizunaError as exc:
        session.rollback()
        if exc.status_code in (401, 403, 404):
            raise
        message = translate_error(translator(viewer.lang), viewer.lang, exc)
        return _endpoint_page(request, session, viewer, view.endpoint_id, error=message, status=409)
    return _back(view.endpoint_id, "saved")
