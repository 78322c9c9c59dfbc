"""The customer 360 is one service read: the UI page and GET /api/v1/customers/{id}/360 show the same data."""

from __future__ import annotations

import re

import pytest

from kizuna.auth import service as auth
from kizuna.customers import merge
from kizuna.customers import service as customers
from kizuna.customers.customer360 import customer_360
from kizuna.customers.schemas import CompanyCreate, NoteCreate
from kizuna.customers.timeline import KINDS
from kizuna.web.ui_base import TIMELINE_KINDS
from tests import factories


@pytest.fixture
def person(session) -> dict[str, int]:
    """A customer with an owner, a company and a touchpoint of every timeline kind, plus a merged duplicate."""
    owner = factories.user(session, email="owner@example.com", role="sales", name="営業 一郎")
    author = factories.user(session, email="author@example.com", role="support", name="サポート 花子")
    company = customers.create_company(session, actor=factories.SYSTEM, data=CompanyCreate(name="株式会社サンプル"))
    session.flush()
    c = factories.customer(session, email="hanako@example.jp", owner_id=owner.id, company_id=company.id)
    dup = factories.customer(session, phone="090-1234-5678", city="渋谷区")
    factories.product(session, sku="TEA-01", name="Uji Matcha 100g", price=2400)
    factories.consent(session, customer_id=c.id, channel="email", recorded_at=factories.at("2024-01-05"))
    factories.order(
        session,
        customer_id=c.id,
        external_id="ORD-1001",
        ordered_at=factories.at("2024-02-10"),
        lines=[{"sku": "TEA-01", "quantity": 2, "unit_price": 2400}],
    )
    factories.event(
        session, customer_id=c.id, type="store_visit", channel="store", occurred_at=factories.at("2024-03-01")
    )
    customers.add_note(session, actor=auth.actor_for(author), customer_id=c.id, data=NoteCreate(body="電話した"))
    factories.message(session, customer_id=c.id, key="welcome")
    factories.activity(session, customer_id=c.id, occurred_at=factories.at("2024-03-05"))
    factories.task(session, customer_id=c.id)
    factories.survey_response(session, customer_id=c.id)
    from kizuna.chat.models import Chat
    from kizuna.inquiries import service as inquiries
    from kizuna.inquiries.schemas import InquiryCreate

    inquiries.create_inquiry(
        session,
        actor=factories.SYSTEM,
        data=InquiryCreate(subject="配送の遅れ", body="まだ届きません", customer_id=c.id),
    )
    session.add(Chat(public_id="c360chat", secret_hash="0" * 64, customer_id=c.id, email=c.email))
    session.flush()
    merge.merge_customers(session, actor=factories.SYSTEM, survivor_id=c.id, merged_id=dup.id, reason="same person")
    session.commit()
    return {"id": c.id, "merged": dup.id}


def test_api_360_is_the_service_read(client, session, person):
    r = client.get(f"/api/v1/customers/{person['id']}/360")
    assert r.status_code == 200
    # The fixture's objects may still sit in this session (expire_on_commit is off; an order and its lines form a
    # reference cycle that only the cyclic GC frees) holding amounts as computed (4800), not as stored (4800.00).
    session.expire_all()
    expected = customer_360(session, actor=factories.SYSTEM, customer_id=person["id"]).model_dump(mode="json")
    assert r.json() == expected
    body = r.json()
    assert body["customer"]["email"] == "hanako@example.jp" and body["customer"]["city"] == "渋谷区"
    assert body["company"]["name"] == "株式会社サンプル" and body["owner_name"] == "営業 一郎"
    assert body["merged_ids"] == [person["merged"]]
    assert [(c["channel"], c["status"]) for c in body["consents"]] == [("email", "granted")]
    assert {i["kind"] for i in body["identities"]} == {"email", "phone"}
    assert body["orders"][0]["lines"][0]["product_name"] == "Uji Matcha 100g"
    assert body["notes"][0]["author_name"] == "サポート 花子"
    assert {item["kind"] for item in body["timeline"]} == set(KINDS)


def test_api_360_of_a_merged_id_reads_the_survivor_and_pages_the_timeline(client, person):
    body = client.get(f"/api/v1/customers/{person['merged']}/360", params={"timeline_limit": 2}).json()
    assert body["customer"]["id"] == person["id"]
    assert len(body["timeline"]) == 2 and body["timeline_next_cursor"]
    older = client.get(
        f"/api/v1/customers/{person['id']}/360", params={"timeline_cursor": body["timeline_next_cursor"]}
    ).json()
    seen = [(i["kind"], i["id"]) for i in body["timeline"] + older["timeline"]]
    assert len(seen) == len(set(seen)) == len(KINDS)
    assert client.get("/api/v1/customers/999999/360").status_code == 404


def test_ui_page_shows_what_the_service_read_returns(ui_client, session, person):
    ui = ui_client("viewer")
    assert ui.get(f"/customers/{person['merged']}", follow_redirects=False).headers["location"] == (
        f"/customers/{person['id']}"
    )
    html = ui.get(f"/customers/{person['id']}").text
    view = customer_360(session, actor=factories.SYSTEM, customer_id=person["id"])
    kinds = re.findall(r'<li class="tl-item tl-\w+" data-kind="(\w+)">', html)
    assert kinds == [item.kind for item in view.timeline]
    for kind in KINDS:
        assert f'<span class="tl-icon" aria-hidden="true">{TIMELINE_KINDS[kind].icon}</span>' in html
    for text in (
        "株式会社サンプル",
        "営業 一郎",
        "サポート 花子",
        "Uji Matcha 100g",
        "ORD-1001",
        f"#{person['merged']}",
    ):
        assert text in html


def test_the_summary_shows_the_persisted_metrics_once_computed(client, ui_client, session, person, db):
    from decimal import Decimal

    from sqlalchemy import update

    from kizuna.analytics.models import CustomerMetrics
    from kizuna.analytics.service import refresh_with

    assert client.get(f"/api/v1/customers/{person['id']}/360").json()["summary"]["metrics"] is None
    assert 'data-testid="summary-metrics"' not in ui_client("viewer").get(f"/customers/{person['id']}").text
    refresh_with(db)
    session.execute(
        update(CustomerMetrics).values(clv=Decimal("12345"), p_alive=0.8, churn_risk=0.2, expected_purchases=1.2)
    )
    session.commit()
    metrics = client.get(f"/api/v1/customers/{person['id']}/360").json()["summary"]["metrics"]
    # The only customer with an order is the best of every score: R5 F5 is a champion, decile 1.
    assert (metrics["rfm_segment"], metrics["r"], metrics["f"], metrics["m"], metrics["decile"]) == (
        "champions", 5, 5, 5, 1
    )  # fmt: skip
    assert metrics["clv"] == "12345.00" and metrics["churn_risk"] == 0.2
    html = ui_client("viewer").get(f"/customers/{person['id']}").text
    assert 'data-testid="summary-metrics"' in html and "RFMセグメント" in html and "離反リスク 20%" in html
