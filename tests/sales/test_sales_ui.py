"""Sales pages over HTTP in both languages: board, moves (form and JSON), deal page, list filters, the 360 and
company panels, logging an activity in two clicks, and the home page's tasks."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from kizuna.auth.models import User
from kizuna.auth.permissions import Actor
from kizuna.customers import service as customers
from kizuna.customers.schemas import CompanyCreate
from kizuna.db import transaction
from kizuna.sales import activities, deals, pipelines
from kizuna.sales.models import Deal
from kizuna.sales.schemas import DealCreate, TaskCreate
from tests import factories
from tests.web.conftest import csrf_of


def _actor(s, email: str) -> Actor:  # noqa: ANN001
    from kizuna.auth import service as auth

    return auth.actor_for(s.scalar(select(User).where(User.email == email)))


@pytest.fixture
def seeded(db, ui_client):  # noqa: ANN001, ANN201
    ui = ui_client("sales")  # sales-0@example.com
    with transaction(db) as s:
        rep = _actor(s, "sales-0@example.com")
        company = customers.create_company(s, actor=factories.SYSTEM, data=CompanyCreate(name="株式会社みらい"))
        s.flush()
        customer = factories.customer(s, family_name="佐藤", given_name="花子", company_id=company.id)
        stages = pipelines.stages_of(s, pipelines.default_pipeline(s).id)
        made = []
        for name, amount, day in (("大型案件", 3_000_000, "2030-03-01"), ("小口案件", 50_000, "2030-01-15")):
            made.append(
                deals.create_deal(
                    s,
                    actor=rep,
                    data=DealCreate(
                        name=name,
                        customer_id=customer.id,
                        company_id=company.id,
                        amount=amount,
                        expected_close_date=dt.date.fromisoformat(day),
                    ),
                )  # fmt: skip
            )
        s.flush()
        ids = {
            "customer": customer.id,
            "company": company.id,
            "deals": [d.id for d in made],
            "stages": [x.id for x in stages],
        }
    return ui, ids


def test_board_shows_columns_cards_counts_and_totals(seeded):
    ui, ids = seeded
    html = ui.get("/deals/board").text
    assert html.count('data-testid="column"') == 6
    for stage in ("アポイント", "ヒアリング", "提案", "交渉", "受注", "失注"):
        assert stage in html
    first = html.split('data-testid="column"')[1]
    assert '<span class="col-count" data-testid="col-count">2</span>' in first
    assert "¥3,050,000" in first
    # Soonest close date first.
    assert first.index("小口案件") < first.index("大型案件")
    assert "佐藤 花子" in first and "株式会社みらい" in first
    ui.cookies.set("kizuna_lang", "en")
    english = ui.get("/deals/board").text
    assert "Appointment" in english and "Negotiation" in english


def test_move_by_form_and_by_json_with_a_stale_version(seeded, db):
    ui, ids = seeded
    deal_id, stages = ids["deals"][0], ids["stages"]
    html = ui.get("/deals/board").text
    token = csrf_of(html)
    r = ui.post(
        f"/deals/{deal_id}/move",
        data={"csrf_token": token, "stage_id": stages[1], "version": 1},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] and body["stage_id"] == stages[1]
    assert body["columns"][str(stages[1])]["count"] == 1 and 'data-version="2"' in body["card"]
    # The same card moved again with the version it had: refused, and the card comes back as stored.
    r = ui.post(
        f"/deals/{deal_id}/move",
        data={"csrf_token": token, "stage_id": stages[2], "version": 1},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 409
    assert r.json()["stage_id"] == stages[1] and "他の人が先に変更" in r.json()["message"]
    # Lost without a reason: refused by name.
    r = ui.post(
        f"/deals/{deal_id}/move",
        data={"csrf_token": token, "stage_id": stages[5], "version": 2},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 422 and "失注理由" in r.json()["message"]
    # Without CSRF nothing moves.
    r = ui.post(f"/deals/{deal_id}/move", data={"stage_id": stages[3], "version": 2}, follow_redirects=False)
    assert r.status_code == 403
    # The plain form (no script): a redirect back.
    r = ui.post(
        f"/deals/{deal_id}/move",
        data={"csrf_token": token, "stage_id": stages[3], "version": 2},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with transaction(db) as s:
        assert s.get(Deal, deal_id).stage_id == stages[3]
    page = ui.get(f"/deals/{deal_id}").text
    assert page.count("<li>") >= 3 and "アポイント → ヒアリング" in page and "ヒアリング → 交渉" in page


def test_viewer_reads_the_board_but_gets_no_move_menu_and_cannot_move(seeded, ui_client):
    _, ids = seeded
    viewer = ui_client("viewer")
    html = viewer.get("/deals/board").text
    assert "大型案件" in html and 'data-testid="move-form"' not in html and 'draggable="true"' not in html
    r = viewer.post(
        f"/deals/{ids['deals'][0]}/move",
        data={"csrf_token": csrf_of(html), "stage_id": ids["stages"][1], "version": 1},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 403


def test_list_filters_by_owner_stage_close_date_and_amount(seeded):
    ui, ids = seeded
    html = ui.get("/deals?amount_min=100000").text
    assert "大型案件" in html and "小口案件" not in html
    html = ui.get("/deals?close_to=2030-02-01").text
    assert "小口案件" in html and "大型案件" not in html
    html = ui.get(f"/deals?stage_id={ids['stages'][1]}").text
    assert "小口案件" not in html and "大型案件" not in html
    html = ui.get("/deals?editable=true").text
    assert "小口案件" in html and "大型案件" in html


def test_customer_and_company_pages_show_deals_and_log_an_activity_in_two_clicks(seeded):
    ui, ids = seeded
    page = ui.get(f"/customers/{ids['customer']}").text
    panel = page.split('data-testid="sales-panel"')[1].split("</section>")[0]
    assert "大型案件" in panel and "小口案件" in panel
    # The panel's form (opened with one click) posts with the second.
    r = ui.post(
        "/activities/new",
        data={"csrf_token": csrf_of(page), "customer_id": ids["customer"], "kind": "call", "subject": "初回ヒアリング",
              "back": f"/customers/{ids['customer']}#sales"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303, re.findall(r"alert-error.*?</div>|field-error.*?</div>", r.text, re.S)
    assert r.headers["location"] == f"/customers/{ids['customer']}#sales"
    page = ui.get(f"/customers/{ids['customer']}").text
    timeline = page.split('data-testid="timeline"')[1]
    assert "初回ヒアリング" in timeline and "電話" in timeline
    # A blank subject: the form comes back with the message, nothing stored.
    r = ui.post("/activities/new", data={"csrf_token": csrf_of(page), "customer_id": ids["customer"], "kind": "call"})
    assert r.status_code == 422 and 'data-testid="form-errors"' in r.text
    company = ui.get(f"/companies/{ids['company']}").text
    assert "大型案件" in company.split('data-testid="sales-panel"')[1]


def test_home_shows_my_tasks_overdue_and_today(seeded, db):
    ui, ids = seeded
    now = dt.datetime.now(dt.UTC)
    with transaction(db) as s:
        rep = _actor(s, "sales-0@example.com")
        for title, due in (("昨日の電話", now - dt.timedelta(days=2)), ("今日の見積", now + dt.timedelta(minutes=1))):
            activities.create_task(s, actor=rep, data=TaskCreate(title=title, customer_id=ids["customer"], due_at=due))
        activities.create_task(
            s, actor=rep, data=TaskCreate(title="来月", customer_id=ids["customer"], due_at=now + dt.timedelta(days=40))
        )
    html = ui.get("/home").text
    overdue = html.split('data-testid="my-overdue"')[1].split("</section>")[0]
    today = html.split('data-testid="my-today"')[1].split("</section>")[0]
    assert "昨日の電話" in overdue and "今日の見積" not in overdue
    # Near midnight "now + 1 minute" may be tomorrow in Tokyo; the task is then in neither list.
    assert "昨日の電話" not in today and "来月" not in html.split('data-testid="my-deals"')[0]
    assert re.search(r"大型案件", html.split('data-testid="my-deals"')[1])
