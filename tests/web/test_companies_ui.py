"""Company pages over HTTP: the page, create, edit (stale and invalid input answered in Japanese), delete."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from kizuna.customers import service as customers
from kizuna.customers.models import Company, Customer
from kizuna.customers.schemas import CompanyCreate, CompanyUpdate
from kizuna.db import transaction
from kizuna.web.i18n import translator
from tests import factories
from tests.web.conftest import csrf_of

ja = translator("ja")


@pytest.fixture
def company(db) -> int:
    """A company with two contacts who bought and did things, and one stranger who did more recently."""
    with transaction(db) as s:
        co = customers.create_company(
            s,
            actor=factories.SYSTEM,
            data=CompanyCreate(name="株式会社サンプル", name_kana="サンプル", domain="sample.co.jp", industry="小売"),
        )
        s.flush()
        a = factories.customer(s, family_name="佐藤", given_name="花子", email="a@sample.co.jp", company_id=co.id)
        b = factories.customer(s, family_name="鈴木", given_name="一郎", email="b@sample.co.jp", company_id=co.id)
        other = factories.customer(s, family_name="他人", given_name="様", email="x@example.jp")
        for customer_id, total, status, day in (
            (a.id, 1200, "completed", "2024-02-01"),
            (b.id, 800, "completed", "2024-03-01"),
            (b.id, 5000, "cancelled", "2024-03-02"),
            (other.id, 99999, "completed", "2024-03-03"),
        ):
            factories.order(
                s, customer_id=customer_id, ordered_at=factories.at(day), lines=[], total_amount=total, status=status
            )
        factories.event(s, customer_id=a.id, type="cart_add", channel="web", occurred_at=factories.at("2024-04-01"))
        factories.event(
            s, customer_id=other.id, type="page_view", channel="web", occurred_at=factories.at("2024-05-01")
        )
        return co.id


def test_company_page_shows_attributes_contacts_spend_and_recent_activity(ui_client, company):
    ui = ui_client("viewer")
    html = ui.get(f"/companies/{company}").text
    for text in ("株式会社サンプル", "サンプル", "sample.co.jp", "小売", "佐藤 花子", "鈴木 一郎"):
        assert text in html
    assert "他人" not in html  # not a contact
    # Spend of the contacts by the one definition: the cancelled order and the stranger's order are left out.
    assert re.search(r'data-testid="company-revenue">¥2,000<', html)
    assert ja("companies.contact_count", count=2) in html
    # The merged activity, newest first, labelled in Japanese.
    activity = html.split('data-testid="company-activity"')[1]
    assert activity.index("カート追加") < activity.index("¥800") < activity.index("¥1,200")
    assert "cart_add" not in activity


def test_companies_list_and_customer_360_link_to_the_company_page(ui_client, db, company):
    ui = ui_client("viewer")
    assert f'href="/companies/{company}"' in ui.get("/companies").text
    with transaction(db) as s:
        contact = s.scalar(select(Customer.id).where(Customer.company_id == company).limit(1))
    assert f'href="/companies/{company}" data-testid="company-link"' in ui.get(f"/customers/{contact}").text


def test_create_company_through_the_form(ui_client, db):
    ui = ui_client("sales")
    page = ui.get("/companies/new")
    assert page.status_code == 200
    r = ui.post(
        "/companies/new",
        data={"csrf_token": csrf_of(page.text), "name": "  絆商事 ", "name_kana": "キズナショウジ", "country": "jp"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    company_id = int(r.headers["location"].split("/")[2].split("?")[0])
    with transaction(db) as s:
        co = s.get(Company, company_id)
        assert (co.name, co.name_kana, co.country, co.domain) == ("絆商事", "キズナショウジ", "JP", None)
    assert "絆商事" in ui.get(r.headers["location"]).text


def test_invalid_company_form_answers_in_japanese_next_to_the_fields_and_keeps_the_input(ui_client, db):
    ui = ui_client("sales")
    token = csrf_of(ui.get("/companies/new").text)
    r = ui.post(
        "/companies/new",
        data={"csrf_token": token, "name": "", "phone": "電話ください", "country": "JPN", "city": "渋谷区"},
    )
    assert r.status_code == 422
    html = r.text
    assert f'data-testid="error-name">{ja("error.missing")}<' in html
    assert 'data-testid="error-phone">「電話ください」は電話番号として正しくありません。<' in html
    assert 'data-testid="error-country">2 文字以内で入力してください。<' in html
    assert 'value="渋谷区"' in html and 'value="電話ください"' in html
    with transaction(db) as s:
        assert s.scalar(select(Company.id)) is None  # nothing half-saved


def test_external_id_taken_is_said_in_japanese(ui_client, db, company):
    with transaction(db) as s:
        customers.create_company(s, actor=factories.SYSTEM, data=CompanyCreate(name="別会社", external_id="C-1"))
    ui = ui_client("sales")
    token = csrf_of(ui.get("/companies/new").text)
    r = ui.post("/companies/new", data={"csrf_token": token, "name": "新会社", "external_id": "C-1"})
    assert r.status_code == 422
    assert 'data-testid="error-external_id">外部ID「C-1」は別のレコードで使われています。<' in r.text


def test_edit_company_and_refuse_an_emptied_name(ui_client, db, company):
    ui = ui_client("sales")
    form = ui.get(f"/companies/{company}/edit").text
    assert 'name="version" value="1"' in form and 'value="株式会社サンプル"' in form
    fields = {
        "csrf_token": csrf_of(form),
        "version": "1",
        "name": "株式会社サンプル",
        "industry": "",
        "city": "大阪市",
    }
    r = ui.post(f"/companies/{company}/edit", data={**fields, "name": " "})
    assert r.status_code == 422 and f'data-testid="error-name">{ja("error.missing")}<' in r.text
    r = ui.post(f"/companies/{company}/edit", data=fields, follow_redirects=False)
    assert r.status_code == 303
    with transaction(db) as s:
        co = s.get(Company, company)
        assert (co.city, co.industry, co.version) == ("大阪市", None, 2)


def test_stale_company_edit_says_who_changed_what_and_keeps_the_input(ui_client, db, company):
    ui = ui_client("sales")
    form = ui.get(f"/companies/{company}/edit").text
    with transaction(db) as s:  # someone else saves first
        customers.update_company(
            s,
            actor=factories.SYSTEM,
            company_id=company,
            data=CompanyUpdate(industry="製造"),
            expected_version=None,
        )
    mine = {"csrf_token": csrf_of(form), "version": "1", "name": "株式会社サンプル", "industry": "IT", "city": "京都市"}
    r = ui.post(f"/companies/{company}/edit", data=mine)
    assert r.status_code == 409
    html = r.text
    assert "このレコードを変更しました" in html and ja("companies.field.industry") in html
    assert 'value="IT"' in html and 'value="京都市"' in html
    assert ja("companies.current_value", value="製造") in html
    assert 'name="version" value="2"' in html  # having seen the change, the user may save again
    with transaction(db) as s:
        assert s.get(Company, company).industry == "製造"
    r = ui.post(f"/companies/{company}/edit", data={**mine, "version": "2"}, follow_redirects=False)
    assert r.status_code == 303
    with transaction(db) as s:
        assert s.get(Company, company).industry == "IT"


def test_delete_company_warns_about_its_contacts_and_keeps_them(ui_client, db, company):
    ui = ui_client("admin")
    confirm = ui.get(f"/companies/{company}/delete").text
    assert ja("companies.delete_contacts_note", count=2) in confirm
    r = ui.post(
        f"/companies/{company}/delete",
        data={"csrf_token": csrf_of(confirm), "version": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/companies")
    with transaction(db) as s:
        assert s.get(Company, company) is None
        assert s.scalar(select(Customer.id).where(Customer.email == "a@sample.co.jp")) is not None


def test_viewer_cannot_open_the_company_forms(ui_client, company):
    ui = ui_client("viewer")
    missing = ui.get("/companies/999999")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert ui.get("/companies/new").status_code == 403
    assert ui.get(f"/companies/{company}/edit").status_code == 403
    assert 'data-testid="company-edit"' not in ui.get(f"/companies/{company}").text
