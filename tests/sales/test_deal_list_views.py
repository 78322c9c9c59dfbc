"""The deal list's CSV export (the list's filters, formula cells neutralised, audited, refused without
``data:export``) and its saved views (the customers list's mechanism with ``list_name="deals"``): saved, applied,
opened by default, private, and refused when a value could not apply."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from kizuna.auth.models import AuditEntry, User
from kizuna.customers.models import SavedView
from kizuna.db import transaction
from kizuna.sales import deals
from kizuna.sales.schemas import DealCreate
from tests import factories
from tests.web.conftest import csrf_of


def _seed(db) -> None:  # noqa: ANN001
    with transaction(db) as s:
        customer = factories.customer(s)
        for name, amount, day in (
            ("=HYPERLINK(\"http://evil\")", "500000", 10), ("小口案件", "30000", 20), ("大型案件", "9000000", 5),
        ):  # fmt: skip
            deals.create_deal(
                s,
                actor=factories.SYSTEM,
                data=DealCreate(
                    name=name,
                    customer_id=customer.id,
                    amount=Decimal(amount),
                    expected_close_date=dt.date(2030, 1, day),
                ),
            )


def _csv(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def test_export_writes_the_filtered_list_with_formulas_neutralised(db, ui_client):
    _seed(db)
    manager = ui_client("manager")
    token = csrf_of(manager.get("/deals").text)
    r = manager.post("/deals/export.csv", data={"amount_min": "100000", "csrf_token": token})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = _csv(r.content)
    assert [row["name"] for row in rows] == ["大型案件", '\'=HYPERLINK("http://evil")']  # by close date
    assert rows[0]["amount"] == "9000000.00" and rows[0]["currency"] == "JPY"
    r = manager.post("/deals/export.csv", data={"close_to": "2030-01-05", "csrf_token": token})
    assert [row["name"] for row in _csv(r.content)] == ["大型案件"]
    r = manager.post("/deals/export.csv", data={"close_to": "2030-13-05", "csrf_token": token})
    assert r.status_code == 422
    assert manager.post("/deals/export.csv", data={"amount_min": "1"}).status_code == 403  # no CSRF token
    with transaction(db) as s:
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "export.deals").order_by(AuditEntry.id)))
    assert [e.details["rows"] for e in entries] == [2, 1]
    rep = ui_client("sales")
    assert 'data-testid="deal-export-form"' not in rep.get("/deals").text
    r = rep.post("/deals/export.csv", data={"csrf_token": csrf_of(rep.get("/deals").text)})
    assert r.status_code == 403


def test_saved_views_of_deals_apply_open_by_default_and_stay_private(db, ui_client):
    _seed(db)
    rep = ui_client("sales")
    other = ui_client("sales")
    token = csrf_of(rep.get("/deals").text)
    r = rep.post(
        "/deals/views", data={"name": "大口", "amount_min": "100000", "sort": "-amount", "csrf_token": token},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/deals?amount_min=100000&sort=-amount"
    page = rep.get(r.headers["location"]).text
    assert 'aria-current="true">大口</a>' in page
    assert page.index("大型案件") < page.index("HYPERLINK") and "小口案件" not in page
    r = rep.post("/deals/views", data={"name": "大口", "amount_min": "5", "csrf_token": token})
    assert r.status_code == 422 and 'data-testid="error-name"' in r.text
    r = rep.post("/deals/views", data={"name": "壊れた", "close_from": "2030-02-30", "csrf_token": token})
    assert r.status_code == 422 and 'data-testid="form-errors"' in r.text and "2030-02-30" in r.text
    with transaction(db) as s:
        views = s.scalars(select(SavedView).where(SavedView.list_name == "deals")).all()
        owner = s.scalar(select(User.id).where(User.email == "sales-0@example.com"))
    assert [(v.name, v.params, v.user_id) for v in views] == [
        ("大口", {"amount_min": "100000", "sort": "-amount"}, owner)
    ]
    # Made the default, the plain list opens on it; ?reset=1 opens it plain; another rep sees none of it.
    r = rep.post(f"/customers/views/{views[0].id}/default", data={"csrf_token": token, "back": "/deals"})
    assert r.status_code == 200
    r = rep.get("/deals", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"].startswith("/deals?")
    assert parse_qs(urlsplit(r.headers["location"]).query) == {"amount_min": ["100000"], "sort": ["-amount"]}
    assert "小口案件" in rep.get("/deals?reset=1").text
    assert "大口" not in other.get("/deals").text and other.get("/deals", follow_redirects=False).status_code == 200
    r = rep.post(f"/customers/views/{views[0].id}/delete", data={"csrf_token": token, "back": "/deals"})
    assert r.status_code == 200
    with transaction(db) as s:
        assert s.scalar(select(SavedView.id).where(SavedView.list_name == "deals")) is None


def test_views_api_takes_deal_views_and_refuses_unknown_fields(client):
    r = client.post(
        "/api/v1/views", json={"name": "今月", "list_name": "deals", "params": {"close_from": "2030-01-01"}}
    )
    assert r.status_code == 201, r.text
    assert r.json()["columns"] == ["stage", "customer", "amount", "expected_close_date", "owner"]
    r = client.post("/api/v1/views", json={"name": "x", "list_name": "deals", "params": {"tag": "vip"}})
    assert r.status_code == 422 and "unknown list field 'tag'" in r.text
    r = client.post("/api/v1/views", json={"name": "y", "list_name": "deals", "params": {"sort": "-colour"}})
    assert r.status_code == 422 and "cannot sort by 'colour'" in r.text
    assert [v["name"] for v in client.get("/api/v1/views", params={"list_name": "deals"}).json()] == ["今月"]
    assert client.get("/api/v1/views").json() == []  # the customers list's views are another list


def test_api_exports_deals_with_the_list_filters_and_the_role_scope(db, client):
    _seed(db)
    r = client.get("/api/v1/exports/deals.csv", params={"amount__lte": "600000", "sort": "-amount"})
    assert r.status_code == 200, r.text
    assert [row["name"] for row in _csv(r.content)] == ['\'=HYPERLINK("http://evil")', "小口案件"]
    r = client.get("/api/v1/exports/deals.csv", params={"editable": "false"})
    assert r.status_code == 200 and _csv(r.content) == []  # an admin may change every deal
    assert client.get("/api/v1/exports/deals.csv", params={"editable": "perhaps"}).status_code == 422
