"""UI pages of scoring: "whom to call first" (/sales/call-first) and the model and its rules (/sales/scoring),
where managers and admins retrain and edit the fallback rules. Handlers call one service each."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.errors import KizunaError
from kizuna.sales.scoring import rules, service
from kizuna.sales.scoring.features import RULE_FEATURES
from kizuna.sales.scoring.schemas import RuleIn, model_read
from kizuna.web.deps import DB
from kizuna.web.forms import translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router

router = ui_router()
BLANK_RULES = 2  # empty rows under the rules, to add new ones


@router.get("/sales/call-first")
def call_first_page(
    request: Request, session: DB, viewer: CurrentViewer, mine: int = 0, subject: str | None = None
) -> Response:
    owner = viewer.actor.user_id if mine else None
    kind = subject if subject in ("deal", "lead") else None
    items = service.call_first(session, actor=viewer.actor, owner_id=owner, subject=kind, limit=100)
    return render(request, "sales/call_first.html", viewer, items=items, mine=bool(mine), subject=kind or "")


def _scoring_page(
    request: Request,
    session: DB,
    viewer: Viewer,
    *,
    error: str = "",
    rule_rows: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> Response:
    require(viewer.actor, "deals:read")
    models = [model_read(m) for m in service.latest_models(session).values()]
    current = rules.list_rules(session)
    session.commit()  # the default rules, written on first use
    if rule_rows is None:
        rule_rows = [
            {"subject": r.subject, "feature": r.feature, "op": r.op, "value": r.value, "points": str(r.points)}
            for r in current
        ]
    blank = {"subject": "deal", "feature": "", "op": ">=", "value": "", "points": ""}
    return render(
        request,
        "sales/scoring.html",
        viewer,
        status=status,
        models=models,
        rules=current,
        describe=rules.describe,
        rule_rows=[*rule_rows, *([blank] * BLANK_RULES)],
        features=sorted({f for names in RULE_FEATURES.values() for f in names}),
        ops=rules.RULE_OPS,
        error=error,
        min_history=service.MIN_HISTORY,
    )


@router.get("/sales/scoring")
def scoring_page(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    return _scoring_page(request, session, viewer)


@router.post("/sales/scoring/train")
def train(request: Request, session: DB, viewer: PostingViewer) -> Response:
    try:
        service.train(session, actor=viewer.actor)
    except KizunaError as exc:
        session.rollback()
        if exc.status_code in (401, 403):
            raise
        message = translate_error(translator(viewer.lang), viewer.lang, exc)
        return _scoring_page(request, session, viewer, error=message, status=422)
    session.commit()
    return RedirectResponse("/sales/scoring?trained=1", status_code=303)


@router.post("/sales/scoring/rules")
async def save_rules(request: Request, session: DB, viewer: PostingViewer) -> Response:
    posted = await request.form()
    rows = []
    for i in range(int(str(posted.get("rows") or 0))):
        row = {k: str(posted.get(f"r{i}_{k}") or "").strip() for k in ("subject", "feature", "op", "value", "points")}
        if posted.get(f"r{i}_delete") or not row["feature"]:
            continue
        rows.append(row)
    try:
        parsed = []
        for i, row in enumerate(rows):
            try:
                points = int(row["points"])
            except ValueError:
                raise KizunaError(f"rule {i + 1}: points '{row['points']}' is not a whole number") from None
            parsed.append(RuleIn(**{**row, "points": points}))
        service.update_rules(session, actor=viewer.actor, new_rules=parsed)
    except (KizunaError, ValueError) as exc:
        session.rollback()
        if isinstance(exc, KizunaError) and exc.status_code in (401, 403):
            raise
        t = translator(viewer.lang)
        message = translate_error(t, viewer.lang, exc) if isinstance(exc, KizunaError) else str(exc).splitlines()[0]
        if not isinstance(exc, KizunaError):
            # Pydantic's first complaint, e.g. "1 validation error for RuleIn": show the field's message instead.
            errors = getattr(exc, "errors", lambda: [])()
            if errors:
                message = f"{'.'.join(str(p) for p in errors[0]['loc'])}: {errors[0]['msg']}"
        return _scoring_page(request, session, viewer, error=message, rule_rows=rows, status=422)
    session.commit()
    return RedirectResponse("/sales/scoring?saved=1", status_code=303)
