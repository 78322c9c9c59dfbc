"""UI pages for duplicates: the review list with "scan now", a pair side by side, and the merge a person decides."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.customers import duplicate_review, duplicate_scan, duplicates
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, read_form, submit
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router, with_notice

router = ui_router()
# Every page here is for deciding about pairs, which the merge permission covers (as the API's merge asks).
PERMISSION = "customers:merge"


def _page_number(raw: str | None) -> int:
    return int(raw) if raw and raw.isdigit() else 1


@router.get("/customers/duplicates")
def duplicate_list(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    require(viewer.actor, PERMISSION)
    page = duplicate_review.open_pairs(session, actor=viewer.actor, page=_page_number(request.query_params.get("page")))
    done, waiting = duplicate_scan.latest_scans(session, actor=viewer.actor)
    return render(request, "customers/duplicates.html", viewer, page=page, last_scan=done, waiting_scan=waiting)


@router.post("/customers/duplicates/scan")
def duplicate_scan_now(session: DB, viewer: PostingViewer) -> Response:
    duplicate_scan.request_scan(session, actor=viewer.actor)
    session.commit()
    return RedirectResponse("/customers/duplicates", status_code=303)


@router.post("/customers/duplicates/{pair_id:int}/dismiss")
def duplicate_dismiss(session: DB, viewer: PostingViewer, pair_id: int) -> Response:
    duplicates.dismiss(session, actor=viewer.actor, pair_id=pair_id)
    session.commit()
    return RedirectResponse("/customers/duplicates", status_code=303)


def _compare_page(
    request: Request, session: DB, viewer: Viewer, pair_id: int, form: FormState | None = None, status: int = 200
) -> Response:
    view = duplicate_review.compare(session, actor=viewer.actor, pair_id=pair_id)
    first = view.first.customer
    if form is None:
        # Nothing picked yet: the older record survives and every differing value is its own.
        values = {"survivor": str(first.id), **{f"pick_{f.group}": str(first.id) for f in view.fields if f.choice}}
        form = FormState(values=values)
    return render(request, "customers/duplicate_pair.html", viewer, status=status, view=view, form=form)


@router.get("/customers/duplicates/{pair_id:int}")
def duplicate_pair(request: Request, session: DB, viewer: CurrentViewer, pair_id: int) -> Response:
    require(viewer.actor, PERMISSION)
    return _compare_page(request, session, viewer, pair_id)


@router.post("/customers/duplicates/{pair_id:int}/merge")
async def duplicate_merge(request: Request, session: DB, viewer: PostingViewer, pair_id: int) -> Response:
    require(viewer.actor, PERMISSION)
    raw = await request.form()
    view = duplicate_review.compare(session, actor=viewer.actor, pair_id=pair_id)
    ids = (view.first.customer.id, view.second.customer.id)
    picks = tuple(f"pick_{f.group}" for f in view.fields if f.choice)
    # ``version``: where a stale-record refusal of the service lands (its field), shown above the comparison.
    form = read_form(raw, ("survivor", "confirm", "version", *picks, *(f"version_{i}" for i in ids)))
    t = translator(viewer.lang)
    survivor = _customer_id(form.value("survivor"), ids)
    if survivor is None:
        form.add("survivor", t("duplicates.error_pick_survivor"))
    picked = {}
    for name in picks:
        chosen = _customer_id(form.value(name), ids)
        if chosen is None:
            form.add(name, t("duplicates.error_pick_value"))
        else:
            picked[name.removeprefix("pick_")] = chosen
    if form.value("confirm") != "yes":
        form.add("confirm", t("duplicates.error_confirm"))
    versions = {i: int(v) for i in ids if (v := form.value(f"version_{i}")).isdigit()}
    if form.ok and survivor is not None:
        merged = submit(
            form,
            t,
            viewer.lang,
            lambda: duplicate_review.merge_pair(
                session, actor=viewer.actor, pair_id=pair_id, survivor_id=survivor, picked=picked, versions=versions
            ),
        )
        if form.ok and merged is not None:
            session.commit()
            return with_notice(RedirectResponse(f"/customers/{merged.id}", status_code=303), "merged")
    session.rollback()
    stale = bool(form.error("version"))
    return _compare_page(request, session, viewer, pair_id, form, status=409 if stale else 422)


def _customer_id(raw: str, ids: tuple[int, int]) -> int | None:
    return int(raw) if raw.isdigit() and int(raw) in ids else None
