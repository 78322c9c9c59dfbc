"""Campaign pages: the list, a form for a new campaign (segment, template, optional A/B test on subjects), and a
campaign's page with its funnel chart, the numbers per variant as a table and CSV, and the send / pause /
resume / cancel buttons. Sending is the worker's; these pages only change the campaign's state."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from pydantic import ValidationError as PydanticError
from starlette.responses import RedirectResponse, Response

from kizuna.campaigns import service
from kizuna.campaigns.schemas import ABTest, CampaignCreate, CampaignStats, Variant
from kizuna.config import get_settings
from kizuna.errors import KizunaError
from kizuna.web.deps import DB
from kizuna.web.forms import read_form, translate_error, translate_pydantic
from kizuna.web.i18n import catalog, translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router

router = ui_router()

FIELDS = (
    "name",
    "description",
    "channel",
    "segment_id",
    "template_id",
    "subject",
    "subject_b",
    "sample_percent",
    "metric",
    "test_hours",
)
FUNNEL = ("messages", "sent", "opened", "clicked", "converted")


def _choices(session: Any, viewer: Viewer) -> dict[str, Any]:
    return service.choices(session, actor=viewer.actor)


@router.get("/campaigns")
def campaigns_list(request: Request, viewer: CurrentViewer, session: DB) -> Response:
    rows = service.list_campaigns(session, actor=viewer.actor)
    return render(request, "campaigns/list.html", viewer, campaigns=rows)


@router.get("/campaigns/new")
def campaign_new(request: Request, viewer: CurrentViewer, session: DB) -> Response:
    form = read_form({"channel": "email", "sample_percent": "20", "metric": "opened", "test_hours": "4"}, FIELDS)
    return render(request, "campaigns/new.html", viewer, form=form, **_choices(session, viewer))


def _data(values: dict[str, str]) -> CampaignCreate:
    ab = None
    if values["subject_b"].strip():
        ab = ABTest(
            variants=[
                Variant(name="A", subject=values["subject"].strip() or None),
                Variant(name="B", subject=values["subject_b"].strip()),
            ],
            sample_percent=int(values["sample_percent"] or 20),
            metric=values["metric"] or "opened",
            test_hours=float(values["test_hours"] or 4),
        )
    return CampaignCreate(
        name=values["name"].strip(),
        description=values["description"],
        channel=values["channel"] or "email",
        segment_id=int(values["segment_id"]) if values["segment_id"].isdigit() else 0,
        template_id=int(values["template_id"]) if values["template_id"].isdigit() else 0,
        subject=values["subject"].strip() or None,
        ab_test=ab,
    )


@router.post("/campaigns/new")
async def campaign_create(request: Request, viewer: PostingViewer, session: DB) -> Response:
    form = read_form(await request.form(), FIELDS)
    t = translator(viewer.lang)
    try:
        campaign = service.create_campaign(session, actor=viewer.actor, data=_data(form.values))
        session.commit()
    except KizunaError as exc:
        session.rollback()
        if exc.status_code in (401, 403):
            raise
        form.add(exc.field, translate_error(t, viewer.lang, exc))
    except PydanticError as exc:
        for error in exc.errors():
            loc = [str(p) for p in error.get("loc", ())]
            name = "subject_b" if "variants" in loc else (loc[0] if loc else None)
            form.add(name, translate_pydantic(t, viewer.lang, error))
    except ValueError as exc:
        form.add(None, str(exc))
    if not form.ok:
        return render(request, "campaigns/new.html", viewer, status=422, form=form, **_choices(session, viewer))
    return RedirectResponse(f"/campaigns/{campaign.id}", status_code=303)


def _reason_label(lang: str) -> Any:
    t, known = translator(lang), catalog(lang)
    return lambda code: t(f"campaigns.reason.{code}") if f"campaigns.reason.{code}" in known else code


def _chart(t: Any, result: CampaignStats) -> dict[str, Any]:
    variants = [v for v in result.variants if v.variant != "-"] or [result.total]
    labels = [t(f"campaigns.funnel.{k}") for k in FUNNEL]
    return {
        "data": [
            {
                "type": "bar",
                "name": v.variant if v.variant != "all" else t("campaigns.all"),
                "x": labels,
                "y": [getattr(v, k) for k in FUNNEL],
            }
            for v in variants
        ],
        "layout": {
            "barmode": "group",
            "margin": {"t": 10, "r": 10, "b": 40, "l": 50},
            "height": 320,
            "legend": {"orientation": "h", "y": -0.2},
        },
    }


@router.get("/campaigns/{campaign_id}")
def campaign_page(request: Request, viewer: CurrentViewer, session: DB, campaign_id: int) -> Response:
    campaign = service.get_campaign(session, campaign_id, actor=viewer.actor)
    result = service.stats(session, campaign_id, actor=viewer.actor)
    segment, template = service.related(session, campaign)
    return render(
        request,
        "campaigns/show.html",
        viewer,
        campaign=campaign,
        stats=result,
        segment=segment,
        message_template=template,
        chart=_chart(translator(viewer.lang), result),
        error="",
    )


@router.get("/campaigns/{campaign_id}/stats.csv")
def campaign_csv(viewer: CurrentViewer, session: DB, campaign_id: int) -> Response:
    result = service.stats(session, campaign_id, actor=viewer.actor)
    out = io.StringIO()
    rows = [v.model_dump() for v in [*result.variants, result.total]]
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)  # numbers and variant names (letters, digits, - and _): nothing a sheet would run
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="campaign-{campaign_id}.csv"'},
    )


def _when(raw: str, viewer: Viewer) -> dt.datetime | None:
    """A ``datetime-local`` value is the user's wall clock in the default time zone."""
    if not raw.strip():
        return None
    return dt.datetime.fromisoformat(raw).replace(tzinfo=ZoneInfo(get_settings().default_timezone))


@router.post("/campaigns/{campaign_id}/{action}")
async def campaign_action(
    request: Request, viewer: PostingViewer, session: DB, campaign_id: int, action: str
) -> Response:
    if action not in ("schedule", "pause", "resume", "cancel"):
        return Response(status_code=404)
    form = await request.form()
    try:
        if action == "schedule":
            service.schedule(session, campaign_id, actor=viewer.actor, at=_when(str(form.get("at", "")), viewer))
        else:
            getattr(service, action)(session, campaign_id, actor=viewer.actor)
        session.commit()
    except (KizunaError, ValueError) as exc:
        session.rollback()
        if isinstance(exc, KizunaError) and exc.status_code in (401, 403):
            raise
        t = translator(viewer.lang)
        message = translate_error(t, viewer.lang, exc) if isinstance(exc, KizunaError) else str(exc)
        campaign = service.get_campaign(session, campaign_id, actor=viewer.actor)
        result = service.stats(session, campaign_id, actor=viewer.actor)
        return render(
            request,
            "campaigns/show.html",
            viewer,
            status=422,
            campaign=campaign,
            stats=result,
            segment=service.related(session, campaign)[0],
            message_template=service.related(session, campaign)[1],
            chart=_chart(t, result),
            error=message,
        )
    return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)
