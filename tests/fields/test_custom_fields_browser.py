"""Custom fields in a real Chromium: an admin adds a field on /admin/fields, the customer form shows it at
once, a wrong value is refused beside the field (nothing saved), a right one shows on the customer's page;
the pages fit a 390px phone in both languages and pass axe-core."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from kizuna.customers.models import Customer
from kizuna.db import transaction
from kizuna.fields.models import CustomField
from tests.phone import phone_problems

pytestmark = pytest.mark.browser


def _add_field(page, live_server: str, **values: str) -> None:  # noqa: ANN001
    page.goto(f"{live_server}/admin/fields")
    form = page.get_by_test_id("field-form")
    form.locator("select[name=entity]").select_option(values.get("entity", "customer"))
    form.locator("input[name=label]").fill(values["label"])
    form.locator("input[name=key]").fill(values["key"])
    form.locator("select[name=type]").select_option(values["type"])
    if "choices" in values:
        form.locator("textarea[name=choices]").fill(values["choices"])
    if "min_value" in values:
        form.locator("input[name=min_value]").fill(values["min_value"])
    form.get_by_test_id("add-field").click()
    page.wait_for_url(f"{live_server}/admin/fields")
    assert page.locator(f'[data-testid=field-row][data-key="{values["key"]}"]').count() == 1


def test_admin_adds_a_field_and_the_customer_form_shows_it_and_its_error(live_server, sign_in, db):
    page = sign_in("admin", "admin@example.com")
    _add_field(page, live_server, label="来店回数", key="visits", type="number", min_value="0")
    _add_field(page, live_server, label="プラン", key="plan", type="choice", choices="gold\nsilver")

    page.goto(f"{live_server}/customers/new")
    visits = page.locator('input[name="attributes.visits"]')
    assert visits.is_visible() and page.get_by_label("来店回数").count() == 1
    page.locator("input[name=email]").fill("field@example.jp")
    visits.fill("abc")
    page.locator('select[name="attributes.plan"]').select_option("gold")
    page.get_by_test_id("save-customer").click()
    error = page.get_by_test_id("error-attributes.visits")
    expect(error).to_be_visible()
    assert "abc" in error.inner_text() and "来店回数" in error.inner_text()
    # The error sits beside its field, the user's input is kept, and nothing was saved.
    assert page.locator('input[name="attributes.visits"]').get_attribute("aria-invalid") == "true"
    assert page.locator('input[name="attributes.visits"]').input_value() == "abc"
    with transaction(db) as s:
        assert s.scalar(select(Customer.id).where(Customer.email == "field@example.jp")) is None

    page.locator('input[name="attributes.visits"]').fill("12")
    page.get_by_test_id("save-customer").click()
    page.wait_for_url(f"{live_server}/customers/*")
    with transaction(db) as s:
        saved = s.scalar(select(Customer).where(Customer.email == "field@example.jp"))
        assert saved.attributes == {"visits": 12, "plan": "gold"}
    assert page.get_by_test_id("custom-visits").inner_text() == "12"


def test_field_pages_fit_a_phone_and_pass_axe_in_both_languages(live_server, sign_in, db):
    page = sign_in("admin", "admin@example.com")
    _add_field(page, live_server, label="趣味", key="hobbies", type="multi_choice", choices="ski\ntea")
    _add_field(page, live_server, label="担当者", key="rep", type="user")
    page.goto(f"{live_server}/customers/new")
    page.locator("input[name=email]").fill("axe@example.jp")
    page.get_by_test_id("save-customer").click()
    page.wait_for_url(f"{live_server}/customers/*")
    customer = page.url.rsplit("/", 1)[-1].split("#")[0]
    with transaction(db) as s:
        field_id = s.scalar(select(CustomField.id).where(CustomField.key == "hobbies"))
    paths = [
        "/admin/fields", f"/admin/fields/{field_id}/edit", "/customers/new", f"/customers/{customer}",
        f"/customers/{customer}/edit", "/companies", "/deals",
    ]  # fmt: skip
    problems = phone_problems(page, live_server, paths)
    assert not problems, "\n".join(problems)
