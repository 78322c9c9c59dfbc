"""Admin pages for LINE (credentials, quota, the webhook URL to give LINE) and webhooks (endpoints, allow-list),
and the public page a customer opens from a signed LINE link."""

from __future__ import annotations

from typing import Annotated

import pydantic
from fastapi import Form, Request
from starlette.responses import RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.errors import KizunaError
from kizuna.keys import BadToken
from kizuna.messaging import line, linking, settings, webhook_admin
from kizuna.messaging.api_line import WEBHOOK_PATH
from kizuna.messaging.schemas import DeliveryRulesIn
from kizuna.web.deps import DB
from kizuna.web.forms import translate_error, translate_pydantic
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, request_lang, ui_router, with_notice

router = ui_router()
Field = Annotated[str, Form(max_length=2000)]


def _line_page(
    request: Request,
    session: DB,
    viewer: Viewer,
    *,
    error: str = "",
    status: int = 200,
    rules: dict[str, object] | None = None,
) -> Response:
    view = line.view_settings(session, actor=viewer.actor)
    quota, quota_error = None, ""
    if view.token_set:
        try:
            quota = line.quota(session, actor=viewer.actor)
        except KizunaError as exc:
            quota_error = exc.message
    return render(
        request,
        "line/settings.html",
        viewer,
        status=status,
        settings=view,
        quota=quota,
        quota_error=quota_error,
        webhook_url=str(request.base_url).rstrip("/") + WEBHOOK_PATH,
        rules=rules or settings.read_rules(session, actor=viewer.actor, channel="line"),
        error=error,
    )


@router.get("/admin/line")
def line_settings(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    return _line_page(request, session, viewer)


@router.post("/admin/line")
def save_line_settings(
    request: Request,
    session: DB,
    viewer: PostingViewer,
    channel_token: Field = "",
    channel_secret: Field = "",
    api_base: Field = "",
    bot_basic_id: Field = "",
    clear_token: Annotated[str, Form()] = "",
    clear_secret: Annotated[str, Form()] = "",
) -> Response:
    # An empty credential field keeps what is saved (the page never shows it); the checkboxes clear it.
    try:
        line.save_settings(
            session,
            actor=viewer.actor,
            channel_token="" if clear_token else (channel_token or None),
            channel_secret="" if clear_secret else (channel_secret or None),
            api_base=api_base,
            bot_basic_id=bot_basic_id,
        )
        session.commit()
    except KizunaError as exc:
        session.rollback()
        if exc.status_code in (401, 403):
            raise
        message = translate_error(translator(viewer.lang), viewer.lang, exc)
        return _line_page(request, session, viewer, error=message, status=422)
    return with_notice(RedirectResponse("/admin/line", status_code=303), "saved")


@router.post("/admin/line/rules")
def save_line_rules(
    request: Request,
    session: DB,
    viewer: PostingViewer,
    cap_count: Annotated[str, Form(max_length=10)] = "0",
    cap_days: Annotated[str, Form(max_length=10)] = "7",
    quiet_start: Annotated[str, Form(max_length=5)] = "",
    quiet_end: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    entered = {"cap_count": cap_count, "cap_days": cap_days, "quiet_start": quiet_start, "quiet_end": quiet_end}
    t = translator(viewer.lang)
    try:
        data = DeliveryRulesIn(**entered)
        settings.save_rules(session, actor=viewer.actor, channel="line", data=data)
        session.commit()
    except pydantic.ValidationError as exc:
        message = translate_pydantic(t, viewer.lang, exc.errors()[0])
        return _line_page(request, session, viewer, error=message, status=422, rules={"channel": "line", **entered})
    except KizunaError as exc:
        session.rollback()
        if exc.status_code in (401, 403):
            raise
        message = translate_error(t, viewer.lang, exc)
        return _line_page(request, session, viewer, error=message, status=422, rules={"channel": "line", **entered})
    return with_notice(RedirectResponse("/admin/line", status_code=303), "saved")


# --- webhooks --------------------------------------------------------------------------------------------


def _webhooks_page(
    request: Request, session: DB, viewer: Viewer, *, error: str = "", status: int = 200, **shown: object
) -> Response:
    return render(
        request,
        "line/webhooks.html",
        viewer,
        status=status,
        endpoints=webhook_admin.list_endpoints(session, actor=viewer.actor),
        allowed=webhook_admin.list_allowed(session, actor=viewer.actor),
        error=error,
        **shown,
    )


@router.get("/admin/webhooks")
def webhooks_page(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    return _webhooks_page(request, session, viewer)


def _failed(request: Request, session: DB, viewer: Viewer, exc: KizunaError, **form: object) -> Response:
    session.rollback()
    if exc.status_code in (401, 403):
        raise exc
    message = translate_error(translator(viewer.lang), viewer.lang, exc)
    return _webhooks_page(request, session, viewer, error=message, status=422, form=form)


@router.post("/admin/webhooks/endpoints")
def create_endpoint(
    request: Request, session: DB, viewer: PostingViewer, name: Field = "", url: Field = ""
) -> Response:
    try:
        endpoint, secret = webhook_admin.create_endpoint(session, actor=viewer.actor, name=name, url=url)
        session.commit()
    except KizunaError as exc:
        return _failed(request, session, viewer, exc, name=name, url=url)
    # The secret is shown on this answer only: it is not kept anywhere it could be shown again.
    return _webhooks_page(request, session, viewer, status=201, new_secret=secret, secret_for=endpoint.name)


@router.post("/admin/webhooks/endpoints/{endpoint_id}/rotate")
def rotate_endpoint(request: Request, session: DB, viewer: PostingViewer, endpoint_id: int) -> Response:
    endpoint, secret = webhook_admin.rotate_secret(session, actor=viewer.actor, endpoint_id=endpoint_id)
    session.commit()
    return _webhooks_page(request, session, viewer, new_secret=secret, secret_for=endpoint.name)


@router.post("/admin/webhooks/endpoints/{endpoint_id}/active")
def toggle_endpoint(
    session: DB, viewer: PostingViewer, endpoint_id: int, active: Annotated[str, Form()] = ""
) -> Response:
    webhook_admin.update_endpoint(session, actor=viewer.actor, endpoint_id=endpoint_id, active=active == "1")
    session.commit()
    return with_notice(RedirectResponse("/admin/webhooks", status_code=303), "saved")


@router.post("/admin/webhooks/endpoints/{endpoint_id}/delete")
def delete_endpoint(session: DB, viewer: PostingViewer, endpoint_id: int) -> Response:
    webhook_admin.delete_endpoint(session, actor=viewer.actor, endpoint_id=endpoint_id)
    session.commit()
    return with_notice(RedirectResponse("/admin/webhooks", status_code=303), "deleted")


@router.post("/admin/webhooks/allow")
def add_allowed(request: Request, session: DB, viewer: PostingViewer, entry: Field = "", note: Field = "") -> Response:
    try:
        webhook_admin.add_allowed(session, actor=viewer.actor, entry=entry, note=note)
        session.commit()
    except KizunaError as exc:
        return _failed(request, session, viewer, exc, entry=entry, note=note)
    return with_notice(RedirectResponse("/admin/webhooks", status_code=303), "created")


@router.post("/admin/webhooks/allow/{allow_id}/delete")
def remove_allowed(session: DB, viewer: PostingViewer, allow_id: int) -> Response:
    webhook_admin.remove_allowed(session, actor=viewer.actor, allow_id=allow_id)
    session.commit()
    return with_notice(RedirectResponse("/admin/webhooks", status_code=303), "deleted")


# --- a customer's LINE link ------------------------------------------------------------------------------


@router.get("/line/link/{link_token}")
def link_page(request: Request, session: DB, link_token: str) -> Response:
    """Public: the customer opened their signed link. It shows the code to send, never who the customer is."""
    token = link_token  # named apart from the unsubscribe page's ``token``: one name, one meaning per path
    try:
        linking.read_token(token)
    except BadToken as exc:
        t = translator(request_lang(request))
        expired = exc.key == "error.line_link_expired"
        return render(
            request,
            "line/link.html",
            status=410 if expired else 404,
            error=t("line.link_expired" if expired else "line.link_invalid"),
        )
    config = line.load_config(session)
    return render(
        request,
        "line/link.html",
        code=linking.code_of(token),
        chat_url=linking.chat_url(config.bot_basic_id, token),
        bot_basic_id=config.bot_basic_id,
        error="",
    )


@router.post("/customers/{customer_id}/line-link")
def offer_link(request: Request, session: DB, viewer: PostingViewer, customer_id: int) -> Response:
    """Staff make a customer's signed LINE link to pass on (the page shows it once)."""
    require(viewer.actor, "customers:write")
    offer = linking.offer_link(session, actor=viewer.actor, customer_id=customer_id, base_url=str(request.base_url))
    session.commit()
    return render(request, "line/offer.html", viewer, offer=offer, customer_id=customer_id)
