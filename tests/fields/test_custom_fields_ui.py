"""Custom fields in the server-rendered forms and pages of companies and deals (customers: the browser test):
a field added shows at once in the form, a wrong value is refused beside it with nothing saved, a right one
shows on the record's page. Both backends."""

from __future__ import annotations

import re

from sqlalchemy import select

from kizuna.customers.models import Company
from kizuna.db import transaction
from kizuna.fields import service
from kizuna.fields.models import CustomField
from kizuna.fields.schemas import CustomFieldCreate
from kizuna.sales.models import Deal
from tests import factories
from tests.web.conftest import csrf_of


def _field(db, **body) -> None:  # noqa: ANN001
    with transaction(db) as s:
        service.create_field(s, actor=factories.SYSTEM, data=CustomFieldCreate(**body))


def test_company_form_takes_custom_fields(db, ui_client):
    client = ui_client("admin")
    assert 'name="attributes.employees"' not in client.get("/companies/new").text
    _field(db, entity="company", key="employees", type="number", label="従業員数", min_value=1)
    _field(db, entity="company", key="tier", type="choice", label="ランク", choices=["A", "B"])
    page = client.get("/companies/new").text
    assert 'name="attributes.employees"' in page and 'name="attributes.tier"' in page
    form = {
        "csrf_token": csrf_of(page),
        "name": "株式会社カスタム",
        "attributes.employees": "0",
        "attributes.tier": "A",
    }
    refused = client.post("/companies/new", data=form, follow_redirects=False)
    assert refused.status_code == 422
    assert re.search(r'data-testid="error-attributes.employees">[^<]*less than the minimum 1', refused.text)
    with transaction(db) as s:
        assert s.scalar(select(Company.id).where(Company.name == "株式会社カスタム")) is None
    made = client.post("/companies/new", data={**form, "attributes.employees": "250"}, follow_redirects=False)
    assert made.status_code == 303, made.text
    with transaction(db) as s:
        company = s.scalar(select(Company).where(Company.name == "株式会社カスタム"))
        assert company.attributes == {"employees": 250, "tier": "A"}
    shown = client.get(f"/companies/{company.id}").text
    assert 'data-testid="custom-employees">250<' in shown


def test_deal_form_and_page_take_custom_fields(db, ui_client):
    client = ui_client("admin")
    _field(db, entity="deal", key="renewal", type="date", label="更新日")
    _field(db, entity="deal", key="products", type="multi_choice", label="製品", choices=["CRM", "MA", "SFA"])
    with transaction(db) as s:
        company = Company(name="商談の会社", attributes={})
        s.add(company)
        s.flush()
        company_id = company.id
    page = client.get("/deals/new").text
    assert 'name="attributes.renewal"' in page and 'value="MA"' in page
    form = {
        "csrf_token": csrf_of(page), "name": "更新商談", "company_id": str(company_id), "currency": "JPY",
        "attributes.renewal": "来月", "attributes.products": ["CRM", "SFA"], "attributes.products.sent": "1",
    }  # fmt: skip
    refused = client.post("/deals/new", data=form, follow_redirects=False)
    assert refused.status_code == 422 and 'data-testid="error-attributes.renewal"' in refused.text
    made = client.post("/deals/new", data={**form, "attributes.renewal": "2026-04-01"}, follow_redirects=False)
    assert made.status_code == 303, made.text
    with transaction(db) as s:
        deal = s.scalar(select(Deal).where(Deal.name == "更新商談"))
        assert deal.attributes == {"renewal": "2026-04-01", "products": ["CRM", "SFA"]}
    shown = client.get(f"/deals/{deal.id}").text
    assert 'data-testid="custom-products">CRM, SFA<' in shown
    # Unchecking every box clears the field (the form says the field was on it).
    edit = {
        "csrf_token": csrf_of(shown), "version": str(deal.version), "name": "更新商談", "currency": "JPY",
        "company_id": str(company_id), "attributes.renewal": "2026-04-01", "attributes.products.sent": "1",
    }  # fmt: skip
    assert client.post(f"/deals/{deal.id}/edit", data=edit, follow_redirects=False).status_code == 303
    with transaction(db) as s:
        assert s.get(Deal, deal.id).attributes == {"renewal": "2026-04-01"}


def test_customer_list_offers_custom_columns_and_typed_filters(db, ui_client, client):
    client_ui = ui_client("admin")
    _field(db, entity="customer", key="visits", type="number", label="来店回数")
    _field(db, entity="customer", key="plan", type="choice", label="プラン", choices=["gold", "silver"])
    for email, visits, plan in (
        ("a@example.jp", 9, "gold"),
        ("b@example.jp", 10, "silver"),
        ("c@example.jp", 100, "gold"),
    ):
        body = {"email": email, "attributes": {"visits": visits, "plan": plan}}
        assert client.post("/api/v1/customers", json=body).status_code == 201
    page = client_ui.get("/customers").text
    assert 'data-testid="col-attributes.visits"' in page and 'name="attributes.visits__gte"' in page
    listed = client_ui.get(
        "/customers?attributes.visits__gte=10&attributes.plan=gold&cols=name&cols=email&cols=attributes.visits"
    )
    assert listed.status_code == 200
    assert "c@example.jp" in listed.text and "a@example.jp" not in listed.text and "b@example.jp" not in listed.text
    assert '<td data-col="attributes.visits">100</td>' in listed.text
    # The paging and export links keep the custom filters.
    assert "attributes.visits__gte=10" in listed.text
    bad = client_ui.get("/customers?attributes.visits__gte=many")
    assert bad.status_code == 422 and "attributes.visits" in bad.text


def test_company_list_shows_and_filters_custom_fields(db, ui_client):
    client = ui_client("admin")
    _field(db, entity="company", key="employees", type="number", label="従業員数")
    _field(db, entity="company", key="segment", type="multi_choice", label="業種区分", choices=["製造", "小売"])
    with transaction(db) as s:
        s.add_all([
            Company(name="大きな製造", attributes={"employees": 900, "segment": ["製造"]}),
            Company(name="小さな製造", attributes={"employees": 12, "segment": ["製造", "小売"]}),
            Company(name="大きな小売", attributes={"employees": 700, "segment": ["小売"]}),
        ])  # fmt: skip
    page = client.get("/companies").text
    assert '<th data-col="attributes.employees">従業員数</th>' in page and 'name="attributes.employees__gte"' in page
    listed = client.get("/companies?attributes.employees__gte=500&attributes.segment=製造")
    assert listed.status_code == 200
    assert "大きな製造" in listed.text and "小さな製造" not in listed.text and "大きな小売" not in listed.text
    assert '<td data-col="attributes.segment">製造</td>' in listed.text
    bad = client.get("/companies?attributes.employees__gte=many")
    assert bad.status_code == 422 and "attributes.employees" in bad.text


def test_deal_list_shows_filters_saves_and_exports_custom_fields(db, ui_client):
    client = ui_client("admin")
    _field(db, entity="deal", key="licences", type="number", label="ライセンス数")
    with transaction(db) as s:
        company = Company(name="商談一覧の会社", attributes={})
        s.add(company)
    for name, licences in (("小口", 5), ("大口", 500)):
        page = client.get("/deals/new").text
        form = {"csrf_token": csrf_of(page), "name": name, "company_id": str(company.id), "currency": "JPY",
                "attributes.licences": str(licences)}  # fmt: skip
        assert client.post("/deals/new", data=form, follow_redirects=False).status_code == 303
    page = client.get("/deals?attributes.licences__gte=100")
    assert page.status_code == 200 and 'name="attributes.licences__gte"' in page.text
    assert "大口" in page.text and "小口" not in page.text
    assert '<td data-col="attributes.licences">500</td>' in page.text
    # A saved view keeps the custom filter, and the export applies it.
    saved = client.post(
        "/deals/views",
        data={"csrf_token": csrf_of(page.text), "name": "大口だけ", "attributes.licences__gte": "100"},
        follow_redirects=False,
    )
    assert saved.status_code == 303 and "attributes.licences__gte=100" in saved.headers["location"]
    exported = client.post(
        "/deals/export.csv", data={"csrf_token": csrf_of(page.text), "attributes.licences__gte": "100"}
    )
    assert exported.status_code == 200 and "大口" in exported.text and "小口" not in exported.text
    bad = client.get("/deals?attributes.licences__gte=many")
    assert (
        bad.status_code == 422 and 'data-testid="deal-filter-error"' in bad.text and "attributes.licences" in bad.text
    )


def test_admin_edits_a_field_label_rules_and_order(db, ui_client):
    client = ui_client("admin")
    _field(db, entity="customer", key="visits", type="number", label="来店回数", min_value=0)
    with transaction(db) as s:
        field = s.scalar(select(CustomField).where(CustomField.key == "visits"))
    page = client.get(f"/admin/fields/{field.id}/edit").text
    assert 'name="min_value" type="text" value="0"' in page and 'name="choices"' not in page  # a number has no choices
    form = {
        "csrf_token": csrf_of(page), "version": str(field.version), "label": "ご来店回数", "label_en": "Visits",
        "min_value": "1", "max_value": "", "position": "5", "help_text": "年間",
    }  # fmt: skip
    # A rule that cannot hold is refused beside the form, nothing saved.
    refused = client.post(f"/admin/fields/{field.id}/edit", data={**form, "max_value": "0"})
    assert refused.status_code == 422 and "min_value is larger than max_value" in refused.text
    assert 'data-testid="error-min_value"' in refused.text
    saved = client.post(f"/admin/fields/{field.id}/edit", data={**form, "required": "on"}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    with transaction(db) as s:
        changed = s.get(CustomField, field.id)
        assert (changed.label, changed.label_en, changed.min_value, changed.position) == ("ご来店回数", "Visits", 1, 5)
        assert changed.required and changed.help_text == "年間" and changed.type == "number"
    assert "ご来店回数" in client.get("/customers/new").text
    # The same form sent again holds the old version: refused, the newer edit kept.
    stale = client.post(f"/admin/fields/{field.id}/edit", data={**form, "label": "古い"})
    assert stale.status_code == 422 and 'data-testid="stale"' in stale.text
    with transaction(db) as s:
        assert s.get(CustomField, field.id).label == "ご来店回数"
    # Emptying the label is refused by name.
    page = client.get(f"/admin/fields/{field.id}/edit").text
    empty = client.post(
        f"/admin/fields/{field.id}/edit",
        data={**form, "csrf_token": csrf_of(page), "version": str(changed.version), "label": ""},
    )
    assert empty.status_code == 422 and 'data-testid="error-label"' in empty.text
