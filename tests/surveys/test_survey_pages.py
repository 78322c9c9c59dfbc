"""The team's survey pages over HTTP: create and edit with errors next to the fields, a stale edit refused, the
report's breakdowns and comments, and roles (a viewer reads, cannot write)."""

from __future__ import annotations

from sqlalchemy import select

from kizuna.db import transaction
from kizuna.surveys import service
from kizuna.surveys.models import Survey
from kizuna.web.i18n import catalog
from tests import factories
from tests.surveys.conftest import link_path, token_of
from tests.web.conftest import csrf_of

STALE = catalog("ja")["error.stale"].split("{")[0]
FORM = {
    "name": "配送後",
    "question_ja": "配送に満足しましたか?",
    "question_en": "Were you happy with the delivery?",
    "touchpoint": "delivery",
    "link_days": "30",
    "active": "on",
}


def test_a_marketer_creates_and_edits_a_survey_and_bad_input_is_shown_next_to_the_field(ui_client, db):
    ui = ui_client("marketer")
    csrf = csrf_of(ui.get("/surveys").text)
    blank = ui.post("/surveys", data={**FORM, "question_en": " ", "csrf_token": csrf})
    assert blank.status_code == 422 and 'data-testid="error-question_en"' in blank.text
    too_long = ui.post("/surveys", data={**FORM, "link_days": "999", "csrf_token": csrf})
    assert too_long.status_code == 422 and 'data-testid="error-link_days"' in too_long.text
    with transaction(db) as session:
        assert session.scalar(select(Survey.id)) is None
    created = ui.post("/surveys", data={**FORM, "csrf_token": csrf}, follow_redirects=False)
    assert created.status_code == 303
    sid = int(created.headers["location"].rsplit("/", 1)[1])
    page = ui.get(f"/surveys/{sid}")
    assert page.status_code == 200 and "配送に満足しましたか?" in page.text and 'data-testid="survey-edit"' in page.text
    edited = ui.post(f"/surveys/{sid}", data={**FORM, "name": "配送後 NPS", "version": "1", "csrf_token": csrf},
                     follow_redirects=False)  # fmt: skip
    assert edited.status_code == 303
    stale = ui.post(f"/surveys/{sid}", data={**FORM, "name": "古い編集", "version": "1", "csrf_token": csrf})
    assert stale.status_code == 409 and 'data-testid="form-errors"' in stale.text
    assert STALE in stale.text
    duplicate = ui.post("/surveys", data={**FORM, "name": "配送後 NPS", "csrf_token": csrf})
    assert duplicate.status_code == 422
    with transaction(db) as session:
        [s] = session.scalars(select(Survey))
        assert (s.name, s.version, s.link_days, s.touchpoint) == ("配送後 NPS", 2, 30, "delivery")
    # Without the CSRF token nothing is written.
    assert ui.post("/surveys", data={**FORM, "name": "csrf なし"}).status_code in (400, 403)


def test_a_viewer_reads_the_report_and_comments_but_gets_no_forms(ui_client, db):
    with transaction(db) as session:
        from tests.surveys.conftest import survey

        sid = survey(session).id
        for n, (score, comment) in enumerate(((10, "とても良い"), (2, "遅い"), (8, ""))):
            cid = factories.customer(session, email=f"c{n}@example.jp").id
            service.answer(session, token_of(link_path(session, sid, cid)), score=score, comment=comment)
    ui = ui_client("viewer")
    listing = ui.get("/surveys")
    assert listing.status_code == 200 and 'data-testid="survey-form"' not in listing.text
    assert f'data-testid="nps-{sid}">+0.0<' in listing.text
    for by in ("month", "segment", "touchpoint", "owner"):
        page = ui.get(f"/surveys/{sid}?by={by}")
        assert page.status_code == 200 and 'id="nps-trend"' in page.text
    page = ui.get(f"/surveys/{sid}?by=touchpoint")
    assert "とても良い" in page.text and "遅い" in page.text and 'data-testid="survey-edit"' not in page.text
    assert '<tr data-key="purchase">' in page.text
    today = ui.get(f"/surveys/{sid}?by=touchpoint&from=2000-01-01&to=2000-01-31")
    assert today.status_code == 200 and '<tr data-key="purchase">' not in today.text
    assert f'href="/surveys/{sid}?by=owner&amp;from=2000-01-01&amp;to=2000-01-31"' in today.text
    bad = ui.get(f"/surveys/{sid}?from=2026-13-01")
    assert bad.status_code == 422 and 'data-testid="period-error"' in bad.text
    assert ui.get("/surveys/999").status_code == 404
    csrf = csrf_of(ui.get("/customers").text)
    assert ui.post("/surveys", data={**FORM, "csrf_token": csrf}).status_code == 403
