"""In Chromium: the 360 summary header and timeline filter (Japanese, desktop and phone), and the company page."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.engine import Engine

from kizuna.customers import service as customers
from kizuna.customers.schemas import CompanyCreate
from kizuna.db import transaction
from tests import factories

pytestmark = pytest.mark.browser
WIDTHS = (1400, 390)


def seed(engine: Engine) -> tuple[int, int]:
    """A company customer with orders (one cancelled), many events, consents; returns (customer id, company id)."""
    with transaction(engine) as s:
        owner = factories.user(s, email="owner@example.com", role="sales", name="営業 一郎")
        company = customers.create_company(
            s, actor=factories.SYSTEM, data=CompanyCreate(name="株式会社サンプル", industry="小売")
        )
        s.flush()
        c = factories.customer(
            s,
            family_name="佐藤",
            given_name="花子",
            # A short address: the 360 grid's own 390 px fix (long e-mails, addresses) is another change.
            email="hanako@example.jp",
            company_id=company.id,
            owner_id=owner.id,
        )
        colleague = factories.customer(s, family_name="鈴木", given_name="一郎", company_id=company.id)
        factories.consent(s, customer_id=c.id, channel="email", recorded_at=factories.at("2024-01-05"))
        factories.consent(
            s, customer_id=c.id, channel="line", status="withdrawn", recorded_at=factories.at("2024-01-06")
        )
        for day, total, status in (("2024-02-10", 12800, "completed"), ("2024-03-10", 4200, "completed")):
            factories.order(
                s,
                customer_id=c.id,
                ordered_at=factories.at(day),
                lines=[],
                total_amount=total,
                status=status,
                channel="web",
            )
        factories.order(
            s, customer_id=c.id, ordered_at=factories.at("2024-03-20"), lines=[], total_amount=99000, status="cancelled"
        )
        for n in range(60):  # more than a page of timeline
            factories.event(
                s,
                customer_id=c.id,
                type=("cart_add", "page_view", "email_open")[n % 3],
                channel="email" if n % 3 == 2 else "web",
                occurred_at=factories.at(f"2024-04-{n % 28 + 1:02d}T{n % 24:02d}:00:00"),
            )
        factories.event(
            s, customer_id=colleague.id, type="store_visit", channel="store", occurred_at=factories.at("2024-05-01")
        )
        return c.id, company.id


def fits(page, selector: str, width: int, *, within: str | None = None) -> None:
    """Nothing in ``selector`` reaches past the right edge of a ``width`` wide screen (or of ``within``'s box:
    the 360 grid's own width at 390 px, set by the orders table and long addresses, is another change's)."""
    right = page.locator(selector).evaluate(
        "el => Math.max(...[el, ...el.querySelectorAll('*')].map(e => e.getBoundingClientRect().right))"
    )
    edge = page.locator(within).evaluate("el => el.getBoundingClientRect().right") if within else width
    assert right <= edge + 0.5, f"{selector} overflows: right edge at {right}px, the edge is at {edge}px"


@pytest.mark.parametrize("width", WIDTHS)
def test_360_header_and_timeline_filter_in_japanese(sign_in, live_server, db, width):
    customer_id, company_id = seed(db)
    page = sign_in("viewer")
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server}/customers/{customer_id}")

    summary = page.get_by_test_id("summary")
    assert page.get_by_test_id("summary-revenue").inner_text() == "¥17,000"  # the cancelled order is not spend
    assert page.get_by_test_id("summary-orders").inner_text() == "2 回"
    assert page.get_by_test_id("summary-last-order").inner_text() == "2024-03-10"
    assert page.get_by_test_id("summary-owner").inner_text() == "営業 一郎"
    consent = page.get_by_test_id("summary-consent").inner_text()
    assert "メール" in consent and "LINE" in consent
    assert "granted" not in summary.inner_text() and "withdrawn" not in summary.inner_text()
    fits(page, "[data-testid=summary]", width)
    fits(page, "[data-testid=timeline-filter]", width, within="[data-testid=timeline]")

    # The company row of the profile links to the company page.
    assert page.get_by_test_id("company-link").get_attribute("href") == f"/companies/{company_id}"

    timeline = page.locator("ol.timeline li.tl-item")
    assert "カート追加" in page.get_by_test_id("timeline").inner_text()
    assert "cart_add" not in page.get_by_test_id("timeline").inner_text()

    # Only orders: tick 注文 and apply.
    page.locator("[data-testid=timeline-filter] label", has_text="注文").click()
    page.locator("[data-testid=timeline-filter] button[type=submit]").click()
    page.wait_for_url(re.compile(r".*kind=order.*"))
    kinds = timeline.evaluate_all("items => items.map(i => i.dataset.kind)")
    assert kinds == ["order", "order", "order"]
    assert "キャンセル" in page.get_by_test_id("timeline").inner_text()

    # Events only, paged: the "older" link keeps the filter.
    page.goto(f"{live_server}/customers/{customer_id}?kind=event")
    assert timeline.count() == 50
    page.get_by_test_id("timeline-older").click()
    page.wait_for_url(re.compile(r".*kind=event.*before=.*"))
    assert set(timeline.evaluate_all("items => items.map(i => i.dataset.kind)")) == {"event"}
    assert timeline.count() == 10
    assert page.locator("[data-testid=timeline-filter] input[value=event]").is_checked()
    page.get_by_test_id("timeline-all").click()
    page.wait_for_url(re.compile(rf".*/customers/{customer_id}#timeline$"))
    assert timeline.count() == 50
    assert page.locator("[data-testid=timeline-filter] input:checked").count() == 0


@pytest.mark.parametrize("width", WIDTHS)
def test_company_page_with_contacts_then_edit_it(sign_in, live_server, db, width):
    customer_id, company_id = seed(db)
    page = sign_in("sales")
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server}/companies")
    page.get_by_role("link", name="株式会社サンプル").click()
    page.wait_for_url(re.compile(rf".*/companies/{company_id}$"))
    assert page.get_by_test_id("company-name").inner_text() == "株式会社サンプル"
    assert page.get_by_test_id("company-revenue").inner_text() == "¥17,000"
    contacts = page.get_by_test_id("company-contacts")
    assert contacts.locator("[data-testid=contact-row]").count() == 2
    assert "佐藤 花子" in contacts.inner_text() and "鈴木 一郎" in contacts.inner_text()
    activity = page.get_by_test_id("company-activity").inner_text()
    assert activity.index("鈴木 一郎") < activity.index("佐藤 花子")  # the colleague's store visit is newest
    assert "来店" in activity and "store_visit" not in activity
    fits(page, "[data-testid=company-summary]", width)

    page.get_by_test_id("company-edit").click()
    page.fill("#f-industry", "")
    page.fill("#f-country", "JPN")
    page.get_by_test_id("company-save").click()
    assert page.get_by_test_id("error-country").inner_text() == "2 文字以内で入力してください。"
    assert page.locator("#f-industry").input_value() == ""
    page.fill("#f-country", "JP")
    page.fill("#f-city", "大阪市")
    page.get_by_test_id("company-save").click()
    page.wait_for_url(re.compile(rf".*/companies/{company_id}\?saved=1"))
    assert "大阪市" in page.get_by_test_id("company-attributes").inner_text()

    contacts.get_by_role("link", name="佐藤 花子").click()
    page.wait_for_url(re.compile(rf".*/customers/{customer_id}$"))
    assert page.get_by_test_id("summary").is_visible()
