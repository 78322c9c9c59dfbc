"""NPS survey pages: the list with its create form (/surveys), a survey's report, comments and edit form
(/surveys/{id}), and the public answer page a customer opens from a link (/nps/{token}).

The answer page has no cookie and no CSRF token: the signed token in its URL is the credential, made for one
customer by this Kizuna. Its GET only shows the question with the linked score chosen (mail scanners follow
every link); its POST records. A POST whose browser says it comes from another site (``Sec-Fetch-Site:
cross-site`` or a foreign ``Origin``) is refused, so another page cannot submit an answer on a visitor's behalf.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

from fastapi import Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kizuna import keys
from kizuna.config import get_settings
from kizuna.customers import service as customers
from kizuna.db import take_write_lock
from kizuna.errors import KizunaError, NotFound, ValidationError
from kizuna.surveys import links, report, service
from kizuna.surveys.schemas import SurveyCreate, SurveyUpdate
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, read_form, submit, translate_error
from kizuna.web.i18n import LANG_COOKIE, LANGUAGES, translator
from kizuna.web.session import CurrentViewer, PostingViewer
from kizuna.web.ui_base import env, render, ui_router, with_notice

router = ui_router()
FIELDS = ("name", "question_ja", "question_en", "touchpoint", "active", "link_days")


# --- the team's pages ----------------------------------------------------------------------------------------


def _values(form: FormState) -> dict[str, Any]:
    values: dict[str, Any] = {k: form.value(k) for k in ("name", "question_ja", "question_en", "touchpoint")}
    values["active"] = form.value("active") == "on"
    days = form.value("link_days").strip()
    values["link_days"] = int(days) if days.isdigit() else (days or 60)
    return values


def _list(request: Request, session: DB, viewer: Any, form: FormState | None = None, status: int = 200) -> Response:
    surveys = service.list_surveys(session, actor=viewer.actor)
    totals = {s.id: report.report(session, s.id, by="touchpoint").total for s in surveys}
    form = form or FormState(values={"active": "on", "link_days": "60"})
    return render(
        request, "surveys/list.html", viewer, status=status, section="surveys", surveys=surveys, totals=totals,
        form=form,
    )  # fmt: skip


@router.get("/surveys")
def surveys_page(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    return _list(request, session, viewer)


@router.post("/surveys")
async def survey_create(request: Request, session: DB, viewer: PostingViewer) -> Response:
    form = read_form(await request.form(), FIELDS)
    t = translator(viewer.lang)
    survey = submit(
        form, t, viewer.lang,
        lambda: service.create_survey(session, actor=viewer.actor, data=SurveyCreate(**_values(form))),
    )  # fmt: skip
    if not form.ok:
        session.rollback()
        return _list(request, session, viewer, form, status=422)
    session.commit()
    return with_notice(RedirectResponse(f"/surveys/{survey.id}", status_code=303), "created")


def _day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _show(
    request: Request, session: DB, viewer: Any, survey_id: int, by: str, form: FormState | None = None,
    status: int = 200, start: str = "", end: str = "",
) -> Response:  # fmt: skip
    survey = service.get_survey(session, survey_id, actor=viewer.actor)
    by = by if by in report.BREAKDOWNS else "month"
    t = translator(viewer.lang)
    first, last = _day(start), _day(end)
    period_error = ""
    if (start and first is None) or (end and last is None) or (first and last and first > last):
        period_error, first, last = t("surveys.bad_period"), None, None
        status = 422
    found = report.report(session, survey.id, by=by, start=first, end=last)
    trend = report.report(session, survey.id, by="month", start=first, end=last) if by != "month" else found
    comments = service.latest_comments(session, survey.id, limit=20)
    names = customers.display_names(session, (c.customer_id for c in comments))
    if form is None:
        form = FormState(values={k: str(getattr(survey, k)) for k in FIELDS})
        form.values["active"] = "on" if survey.active else ""
    chart = {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": [r.key for r in trend.rows],
                "y": [r.nps for r in trend.rows],
                "name": "NPS",
                "line": {"color": "#2b5fd9"},
            }
        ],
        "layout": {
            "margin": {"t": 10, "r": 10, "b": 40, "l": 40},
            "height": 280,
            "yaxis": {"range": [-100, 100], "title": {"text": t("surveys.nps")}},
            "xaxis": {"type": "category"},
        },
    }
    return render(
        request, "surveys/show.html", viewer, status=status, section="surveys", survey=survey, found=found,
        trend=trend, by=by, comments=comments, names=names, chart=chart, form=form, breakdowns=report.BREAKDOWNS,
        category=report.category, start=start, end=end, period_error=period_error,
    )  # fmt: skip


@router.get("/surveys/{survey_id}")
def survey_page(
    request: Request,
    session: DB,
    viewer: CurrentViewer,
    survey_id: int,
    by: str = "month",
    start: str = Query(default="", alias="from"),
    end: str = Query(default="", alias="to"),
) -> Response:
    return _show(request, session, viewer, survey_id, by, start=start.strip(), end=end.strip())


@router.post("/surveys/{survey_id}")
async def survey_update(request: Request, session: DB, viewer: PostingViewer, survey_id: int) -> Response:
    raw = await request.form()
    form = read_form(raw, (*FIELDS, "version"))
    t = translator(viewer.lang)

    def action() -> Any:
        version = form.value("version")
        if not str(version).isdigit():
            raise ValidationError("the form is missing its version; reload the page", field="version")
        data = SurveyUpdate(**_values(form), version=int(version))
        return service.update_survey(session, survey_id, actor=viewer.actor, data=data)

    submit(form, t, viewer.lang, action)
    if not form.ok:
        session.rollback()
        status = 409 if form.error("version") else 422
        if form.error("version"):  # no field shows the version: say it above the form
            form.general.append(form.errors.pop("version"))
        return _show(request, session, viewer, survey_id, "month", form, status=status)
    session.commit()
    return with_notice(RedirectResponse(f"/surveys/{survey_id}", status_code=303), "saved")


# --- what a customer opens ------------------------------------------------------------------------------------


def _public(template: str, lang: str, *, status: int = 200, **context: object) -> HTMLResponse:
    lang = lang if lang in LANGUAGES else "ja"
    html = env.get_template(template).render(
        viewer=None, lang=lang, t=translator(lang), notice="", can=lambda _p: False, **context
    )
    # The page holds a personal link: no caching, and no referrer leaving for another site ("same-origin", not
    # "no-referrer": under that, browsers post the form with ``Origin: null``, which reads as a cross-site post).
    headers = {"Cache-Control": "no-store, private", "Referrer-Policy": "same-origin"}
    return HTMLResponse(html, status_code=status, headers=headers)


def _lang(request: Request, asked: str | None, locale: str | None = None) -> str:
    if asked in LANGUAGES:
        return str(asked)
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return str(chosen)
    return locale if locale in LANGUAGES else "ja"


def _customer_locale(session: DB, customer_id: int) -> str | None:
    from kizuna.customers.service import get_customer

    try:
        return get_customer(session, customer_id).locale
    except KizunaError:
        return None


def _refusal(lang: str, exc: KizunaError) -> HTMLResponse:
    reason = (
        "expired" if isinstance(exc, links.LinkExpired)
        else "invalid" if isinstance(exc, keys.BadToken)
        else "closed" if isinstance(exc, service.SurveyClosed)
        else "gone" if isinstance(exc, NotFound)
        else "cross_site"
    )  # fmt: skip
    return _public("surveys/refused.html", lang, status=exc.status_code, reason=reason)


def _score(raw: object) -> int | None:
    text = str(raw or "").strip()
    return int(text) if text.isdigit() and 0 <= int(text) <= 10 else None


@router.get("/nps/{survey_token}")
def answer_page(request: Request, session: DB, survey_token: str, score: str = "", lang: str | None = None) -> Response:
    """The question with the linked score chosen and a comment field; records nothing."""
    token = survey_token
    try:
        survey, claim, existing = service.open_link(session, token)
    except KizunaError as exc:
        return _refusal(_lang(request, lang), exc)
    shown = _lang(request, lang, _customer_locale(session, claim.customer_id))
    if not survey.active:
        return _refusal(shown, service.SurveyClosed("this survey is closed"))
    chosen = _score(score)
    if chosen is None and existing is not None:
        chosen = existing.score
    return _public(
        "surveys/answer.html", shown, survey=survey, token=token, chosen=chosen,
        comment=existing.comment if existing else "", answered=existing is not None, done=False, error="",
        bad_score=bool(score) and _score(score) is None,
    )  # fmt: skip


def _cross_site(request: Request) -> bool:
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin == "null"
    allowed = {f"{request.url.scheme}://{request.url.netloc}"}
    public = get_settings().public_url
    if public:
        parts = urlsplit(public)
        allowed.add(f"{parts.scheme}://{parts.netloc}")
    return origin.rstrip("/") not in allowed


@router.post("/nps/{survey_token}")
async def answer_submit(request: Request, session: DB, survey_token: str, lang: str | None = None) -> Response:
    """Record the answer (a second one through the same link replaces the first) and thank the customer."""
    token = survey_token
    form = await request.form()
    try:
        survey, claim, _ = service.open_link(session, token)
    except KizunaError as exc:
        return _refusal(_lang(request, lang), exc)
    shown = _lang(request, lang, _customer_locale(session, claim.customer_id))
    if _cross_site(request):
        from kizuna.errors import PermissionDenied

        return _refusal(shown, PermissionDenied("cross-site post"))
    comment = str(form.get("comment") or "")
    score = _score(form.get("score"))
    t = translator(shown)
    if score is None:
        return _public(
            "surveys/answer.html", shown, status=422, survey=survey, token=token, chosen=None, comment=comment,
            answered=False, done=False, error=t("surveys.error.score"), bad_score=False,
        )  # fmt: skip
    take_write_lock(session.connection())
    try:
        response, _ = service.answer(session, token, score=score, comment=comment)
    except ValidationError as exc:
        session.rollback()
        return _public(
            "surveys/answer.html", shown, status=422, survey=survey, token=token, chosen=score, comment=comment,
            answered=False, done=False, error=translate_error(t, shown, exc), bad_score=False,
        )  # fmt: skip
    except KizunaError as exc:
        session.rollback()
        return _refusal(shown, exc)
    session.commit()
    return _public(
        "surveys/answer.html", shown, survey=survey, token=token, chosen=response.score, comment=response.comment,
        answered=True, done=True, error="", bad_score=False,
    )  # fmt: skip
