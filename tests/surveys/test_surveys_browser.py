"""In a real Chromium at phone width: a customer opens a mailed link, changes the score, writes a comment and
sends it; the answer page, its refusal page and the team's survey pages pass the axe check in ja and en; and a
marketer creates a survey and reads its report with the trend chart drawn from Kizuna's own plotly."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from kizuna.db import transaction
from kizuna.surveys.models import SurveyResponse
from tests import factories
from tests.phone import page_problems, phone_problems
from tests.surveys.conftest import link_path, survey

pytestmark = pytest.mark.browser


def test_a_customer_opens_a_link_writes_a_comment_and_sends_it(page, live_server, db):
    with transaction(db) as session:
        sid = survey(session).id
        cid = factories.customer(session, email="hanako@example.jp", locale="ja").id
        path = link_path(session, sid, cid, score=6)
    page.set_viewport_size({"width": 390, "height": 900})
    problems = []
    for lang in ("en", "ja"):
        page.goto(f"{live_server}{path}&lang={lang}")
        problems += page_problems(page, f"answer page [{lang}]")
    page.goto(f"{live_server}/nps/forged.token")
    problems += page_problems(page, "refusal page")
    assert problems == []
    page.goto(f"{live_server}{path}")
    assert page.locator("html").get_attribute("lang") == "ja"  # the customer's language
    assert page.get_by_test_id("score-6").is_checked()
    with transaction(db) as session:
        assert session.scalar(select(SurveyResponse.id)) is None
    page.locator("label.nps-option", has_text=re.compile(r"^4$")).click()
    assert page.get_by_test_id("score-4").is_checked()
    page.get_by_test_id("nps-comment").fill("問い合わせの返事が遅かったです")
    page.get_by_test_id("nps-submit").click()
    page.wait_for_load_state()
    page.get_by_test_id("nps-thanks").wait_for()
    assert page_problems(page, "thanks page") == []
    with transaction(db) as session:
        [row] = session.scalars(select(SurveyResponse))
        assert (row.customer_id, row.score, row.comment) == (cid, 4, "問い合わせの返事が遅かったです")


def test_a_marketer_creates_a_survey_and_reads_its_report(sign_in, live_server, db):
    page = sign_in("marketer")
    page.get_by_test_id("nav-surveys").click()
    page.wait_for_url(re.compile(r".*/surveys$"))
    page.fill("#f-name", "After support")
    page.fill("#f-question_ja", "今回のサポートを友人に薦めますか?")
    page.fill("#f-question_en", "Would you recommend our support to a friend?")
    page.fill("#f-touchpoint", "support")
    page.get_by_test_id("survey-create").click()
    page.wait_for_url(re.compile(r".*/surveys/\d+$"))
    sid = int(page.url.rsplit("/", 1)[1])
    with transaction(db) as session:
        cid = factories.customer(session, email="a@example.jp").id
        from kizuna.surveys import service
        from tests.surveys.conftest import token_of

        service.answer(session, token_of(link_path(session, sid, cid)), score=10, comment="丁寧でした")
    page.reload()
    page.locator('[data-testid="nps-chart"][data-drawn="true"]').wait_for()
    assert page.get_by_test_id("nps-total").inner_text() == "+100.0"
    assert "丁寧でした" in page.get_by_test_id("comments").inner_text()
    # The customer's page shows the answer on the timeline, linked to the survey.
    paths = [
        "/surveys",
        f"/surveys/{sid}",
        f"/surveys/{sid}?by=segment",
        f"/surveys/{sid}?by=owner",
        f"/customers/{cid}",
    ]
    assert phone_problems(page, live_server, paths) == []
