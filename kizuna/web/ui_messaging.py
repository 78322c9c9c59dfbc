"""Messaging pages: templates (list, edit, preview with a real customer), the suppression list (add, remove,
CSV export), the message log, and the email settings page for admins (SMTP, sender identity, DKIM, caps, quiet
hours). Every page asks ``kizuna.messaging`` services; the preview's HTML is served on its own URL into a
sandboxed frame, so a template's markup never runs in the page."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.errors import KizunaError
from kizuna.messaging import service, settings, templates
from kizuna.messaging.schemas import EmailSettingsIn, SuppressionCreate, TemplateCreate, TemplateUpdate
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, read_form, submit, translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer
from kizuna.web.ui_base import render, ui_router, with_notice

router = ui_router()
SENDER_FIELDS = ("from_name", "from_address", "reply_to")
TEMPLATE_FIELDS = ("name", "channel", "kind", "subject", "html", "text", *SENDER_FIELDS, "version")
STATUSES = ("queued", "sending", "sent", "skipped", "failed")


def _template_page(
    request: Request,
    viewer: Any,
    form: FormState,
    *,
    template: Any = None,
    status: int = 200,
    preview: Any = None,
    preview_customer: int | None = None,
    preview_error: str = "",
) -> Response:
    return render(
        request,
        "messaging/template_form.html",
        viewer,
        status=status,
        form=form,
        saved=template,
        preview=preview,
        preview_customer=preview_customer,
        preview_error=preview_error,
    )


@router.get("/messaging/templates")
def templates_list(request: Request, viewer: CurrentViewer, session: DB) -> Response:
    rows = service.list_templates(session, actor=viewer.actor)
    return render(request, "messaging/templates.html", viewer, templates=rows)


@router.get("/messaging/templates/new")
def template_new(request: Request, viewer: CurrentViewer) -> Response:
    form = FormState(values={"channel": "email", "kind": "marketing", "subject": "", "html": "", "text": ""})
    return _template_page(request, viewer, form)


@router.post("/messaging/templates/new")
async def template_create(request: Request, viewer: PostingViewer, session: DB) -> Response:
    require(viewer.actor, "templates:write")
    form = read_form(await request.form(), TEMPLATE_FIELDS)
    t = translator(viewer.lang)
    values = {k: form.value(k) for k in ("name", "channel", "kind", "subject", "html", "text", *SENDER_FIELDS)}
    made = submit(
        form,
        t,
        viewer.lang,
        lambda: service.create_template(session, actor=viewer.actor, data=TemplateCreate(**values)),
    )
    if made is None:
        session.rollback()
        return _template_page(request, viewer, form, status=422)
    session.commit()
    return with_notice(RedirectResponse(f"/messaging/templates/{made.id}", status_code=303), "created")


@router.get("/messaging/templates/{template_id}")
def template_edit(
    request: Request, viewer: CurrentViewer, session: DB, template_id: int, customer_id: int | None = None
) -> Response:
    template = service.get_template(session, template_id, actor=viewer.actor)
    form = FormState(values={k: str(getattr(template, k)) for k in TEMPLATE_FIELDS})
    customer = customer_id or service.default_preview_customer(session)
    preview, error = None, ""
    if customer is not None:
        try:
            preview = service.preview(
                session,
                actor=viewer.actor,
                customer_id=customer,
                parts=templates.Parts.of(template),
                channel=template.channel,
                kind=template.kind,
            )
        except KizunaError as exc:
            if exc.status_code in (401, 403):
                raise
            error = translate_error(translator(viewer.lang), viewer.lang, exc)
    return _template_page(
        request, viewer, form, template=template, preview=preview, preview_customer=customer, preview_error=error
    )


@router.get("/messaging/templates/{template_id}/preview.html")
def template_preview_html(viewer: CurrentViewer, session: DB, template_id: int, customer_id: int) -> Response:
    """The rendered HTML alone, for the preview's sandboxed frame (no script runs, nothing is loaded)."""
    template = service.get_template(session, template_id, actor=viewer.actor)
    shown = service.preview(
        session,
        actor=viewer.actor,
        customer_id=customer_id,
        parts=templates.Parts.of(template),
        channel=template.channel,
        kind=template.kind,
    )
    response = HTMLResponse(shown.html or "<pre></pre>")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox"
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@router.post("/messaging/templates/{template_id}")
async def template_save(request: Request, viewer: PostingViewer, session: DB, template_id: int) -> Response:
    require(viewer.actor, "templates:write")
    template = service.get_template(session, template_id, actor=viewer.actor)
    form = read_form(await request.form(), TEMPLATE_FIELDS)
    t = translator(viewer.lang)
    values: dict[str, Any] = {k: form.value(k) for k in ("name", "kind", "subject", "html", "text", *SENDER_FIELDS)}
    values["version"] = int(form.value("version") or 0) or None

    def save() -> Any:
        return service.update_template(session, template_id, actor=viewer.actor, data=TemplateUpdate(**values))

    if submit(form, t, viewer.lang, save) is None:
        session.rollback()
        form.values["channel"] = template.channel
        return _template_page(request, viewer, form, template=template, status=422)
    session.commit()
    return with_notice(RedirectResponse(f"/messaging/templates/{template_id}", status_code=303), "saved")


@router.post("/messaging/templates/{template_id}/delete")
def template_delete(viewer: PostingViewer, session: DB, template_id: int) -> Response:
    service.delete_template(session, template_id, actor=viewer.actor)
    session.commit()
    return with_notice(RedirectResponse("/messaging/templates", status_code=303), "deleted")


# --- suppressions ------------------------------------------------------------------------------------------


def _suppressions_page(
    request: Request, viewer: Any, session: Any, q: str, form: FormState, status: int = 200
) -> Response:
    rows, total = service.list_suppressions(session, actor=viewer.actor, q=q, limit=200)
    return render(request, "messaging/suppressions.html", viewer, status=status, rows=rows, total=total, q=q, form=form)


@router.get("/messaging/suppressions")
def suppressions_list(request: Request, viewer: CurrentViewer, session: DB, q: str = "") -> Response:
    form = FormState(values={"channel": "email", "address": "", "note": ""})
    return _suppressions_page(request, viewer, session, q, form)


@router.post("/messaging/suppressions")
async def suppression_add(request: Request, viewer: PostingViewer, session: DB) -> Response:
    require(viewer.actor, "suppressions:write")
    form = read_form(await request.form(), ("channel", "address", "note"))
    values = {
        "channel": form.value("channel") or "email",
        "address": form.value("address"),
        "note": form.value("note") or None,
    }

    def add() -> Any:
        data = SuppressionCreate(**values)
        return service.suppress(
            session, actor=viewer.actor, channel=data.channel, address=data.address, reason="manual", note=data.note
        )

    if submit(form, translator(viewer.lang), viewer.lang, add) is None:
        session.rollback()
        return _suppressions_page(request, viewer, session, "", form, status=422)
    session.commit()
    return with_notice(RedirectResponse("/messaging/suppressions", status_code=303), "created")


@router.post("/messaging/suppressions/{suppression_id}/delete")
def suppression_remove(viewer: PostingViewer, session: DB, suppression_id: int) -> Response:
    service.unsuppress(session, actor=viewer.actor, suppression_id=suppression_id)
    session.commit()
    return with_notice(RedirectResponse("/messaging/suppressions", status_code=303), "deleted")


@router.get("/messaging/suppressions.csv")
def suppressions_csv(viewer: CurrentViewer, session: DB) -> Response:
    text = service.export_suppressions(session, actor=viewer.actor)
    session.commit()
    return Response(
        text.encode("utf-8-sig"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
    )


# --- the message log ---------------------------------------------------------------------------------------


@router.get("/messaging/messages")
def messages_list(
    request: Request,
    viewer: CurrentViewer,
    session: DB,
    customer_id: int | None = None,
    status: str = "",
    before: int | None = None,
) -> Response:
    rows, next_before = service.list_messages(
        session, actor=viewer.actor, customer_id=customer_id, status=status or None, before=before, limit=100
    )
    return render(
        request,
        "messaging/messages.html",
        viewer,
        rows=rows,
        next_before=next_before,
        customer_id=customer_id or "",
        chosen=status,
        statuses=STATUSES,
    )


@router.get("/messaging/messages/{message_id}")
def message_page(request: Request, viewer: CurrentViewer, session: DB, message_id: int) -> Response:
    message, events = service.get_message(session, message_id, actor=viewer.actor)
    return render(request, "messaging/message.html", viewer, message=message, events=events)


# --- email settings (admins) -------------------------------------------------------------------------------

SETTINGS_FIELDS = tuple(name for name in EmailSettingsIn.model_fields if name not in settings.EMAIL_SECRETS)


def _settings_page(request: Request, viewer: Any, session: Any, form: FormState, status: int = 200) -> Response:
    shown = settings.read_email(session, actor=viewer.actor)
    return render(request, "messaging/settings.html", viewer, status=status, form=form, shown=shown)


@router.get("/admin/channels/email")
def email_settings(request: Request, viewer: CurrentViewer, session: DB) -> Response:
    shown = settings.read_email(session, actor=viewer.actor)
    values = {k: "" if v is None else str(v) for k, v in EmailSettingsIn().model_dump().items()}
    values.update({k: "" if v is None else str(v) for k, v in shown.values.items() if k in SETTINGS_FIELDS})
    return _settings_page(request, viewer, session, FormState(values=values))


@router.post("/admin/channels/email")
async def email_settings_save(request: Request, viewer: PostingViewer, session: DB) -> Response:
    require(viewer.actor, "channels:manage")
    raw = await request.form()
    form = read_form(
        raw, (*SETTINGS_FIELDS, *settings.EMAIL_SECRETS, "remove_smtp_password", "remove_dkim_private_key")
    )
    values: dict[str, Any] = {k: form.value(k) for k in SETTINGS_FIELDS}
    values["tracking"] = form.value("tracking") == "on"
    values["smtp_port"] = form.value("smtp_port") or None
    values["cap_count"] = form.value("cap_count") or 0
    values["cap_days"] = form.value("cap_days") or 7
    for name in settings.EMAIL_SECRETS:
        # An empty password field keeps the saved one; the remove box removes it.
        values[name] = "" if form.value(f"remove_{name}") == "on" else (form.value(name) or None)
        form.values[name] = ""

    def save() -> Any:
        return settings.save_email(session, actor=viewer.actor, data=EmailSettingsIn(**values))

    if submit(form, translator(viewer.lang), viewer.lang, save) is None:
        session.rollback()
        return _settings_page(request, viewer, session, form, status=422)
    session.commit()
    return with_notice(RedirectResponse("/admin/channels/email", status_code=303), "saved")
