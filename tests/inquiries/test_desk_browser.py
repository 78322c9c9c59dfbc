"""The desk in a real Chromium: two agents in two browser contexts race to claim one ticket (one wins, the other
reads the refusal); the desk's pages at phone width pass axe in both languages; the public form works inside an
iframe of another site."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from kizuna.auth.models import User
from kizuna.db import transaction
from kizuna.inquiries import service, setup
from kizuna.inquiries.models import Inquiry
from kizuna.inquiries.schemas import CategoryIn, InquiryCreate, MacroIn
from tests import factories
from tests.conftest import browser_timeouts, free_port
from tests.phone import phone_problems
from tests.web.conftest import PASSWORD

pytestmark = pytest.mark.browser


def _ticket(engine) -> int:  # noqa: ANN001
    with transaction(engine) as s:
        setup.create_category(s, actor=factories.SYSTEM, data=CategoryIn(name="配送", name_en="Shipping"))
        setup.create_macro(s, actor=factories.SYSTEM, data=MacroIn(name="お詫び", body="ご迷惑をおかけしました。"))
        inquiry = service.create_inquiry(
            s,
            actor=factories.SYSTEM,
            data=InquiryCreate(
                subject="届きません",
                body="まだ届きません",
                email="hanako.sato.very.long.address@subdomain.example.co.jp",
                category="配送",
            ),
        )
        return inquiry.id


def _signed_in(browser, live_server: str, email: str):  # noqa: ANN001, ANN202
    context = browser.new_context(locale="ja-JP")
    page = context.new_page()
    browser_timeouts(page)
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/customers.*"))
    return context, page


@pytest.mark.both_backends
def test_two_agents_race_to_claim_and_exactly_one_wins(browser, live_server, db, make_user):
    inquiry_id = _ticket(db)
    emails = [make_user("support", "aoki@example.com", "青木"), make_user("support", "baba@example.com", "馬場")]
    sessions = [_signed_in(browser, live_server, e) for e in emails]
    try:
        pages = [p for _, p in sessions]
        for page in pages:
            page.goto(f"{live_server}/inquiries/{inquiry_id}")
            page.get_by_test_id("claim").wait_for()
        # Both forms go out before either answer is read: the server sees two claims at once.
        for page in pages:
            page.evaluate("document.querySelector('[data-testid=claim]').closest('form').requestSubmit()")
        for page in pages:
            page.wait_for_load_state("load")
            page.wait_for_selector("[data-testid=ticket-done], [data-testid=ticket-problem]")
        won = [p for p in pages if p.locator("[data-testid=ticket-done]").count()]
        lost = [p for p in pages if p.locator("[data-testid=ticket-problem]").count()]
        assert len(won) == 1 and len(lost) == 1
        winner = "青木" if won[0] is pages[0] else "馬場"
        message = lost[0].get_by_test_id("ticket-problem").inner_text()
        assert "すでに" in message and winner in message
        assert won[0].get_by_test_id("ticket-holder").inner_text() == winner
        # The loser's reply is refused too, with the text kept in the form.
        lost[0].goto(f"{live_server}/inquiries/{inquiry_id}")
        assert lost[0].get_by_test_id("claim").count() == 0
        lost[0].fill("#f-body", "横から失礼します")
        lost[0].get_by_test_id("reply-send").click()
        assert winner in lost[0].get_by_test_id("ticket-problem").inner_text()
        assert lost[0].input_value("#f-body") == "横から失礼します"
    finally:
        for context, _ in sessions:
            context.close()
    with transaction(db) as s:
        holder = s.get(User, s.get(Inquiry, inquiry_id).claimed_by)
        assert holder.name == winner


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_an_agent_claims_inserts_a_macro_and_replies(sign_in, live_server, db):
    inquiry_id = _ticket(db)
    page = sign_in("support")
    page.goto(f"{live_server}/inquiries?tab=unclaimed")
    page.get_by_role("link", name=f"KZ-{inquiry_id}").click()
    page.get_by_test_id("claim").click()
    expect(page.get_by_test_id("ticket-done")).to_be_visible()
    page.get_by_test_id("macro-picker").get_by_role("button").click()
    assert page.input_value("#f-body") == "ご迷惑をおかけしました。"
    page.get_by_test_id("reply-send").click()
    assert page.get_by_test_id("ticket-status").inner_text() in ("顧客の返答待ち", "Waiting for customer")
    with transaction(db) as s:
        assert s.get(Inquiry, inquiry_id).first_responded_at is not None


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_the_desk_pages_fit_a_phone_and_pass_axe_in_both_languages(sign_in, live_server, db):
    inquiry_id = _ticket(db)
    page = sign_in("manager")
    paths = ["/inquiries", f"/inquiries/{inquiry_id}", "/inquiries/setup", "/inquiries/report", "/forms/inquiry"]
    assert phone_problems(page, live_server, paths) == []


@pytest.fixture
def shop_site(live_server: str) -> Iterator[str]:
    """Another site (another origin) whose page embeds Kizuna's public form in an iframe."""
    html = (
        "<!doctype html><html lang='ja'><head><meta charset='utf-8'><title>Shop</title></head><body>"
        f"<iframe title='お問い合わせ' src='{live_server}/forms/inquiry?lang=ja' width='380' height='900'></iframe>"
        "</body></html>"
    ).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_the_public_form_works_inside_another_sites_iframe(page, shop_site, db, configure):
    configure(inquiry_form_min_seconds=0)
    _ticket(db)
    page.goto(shop_site)
    frame = page.frame_locator("iframe")
    frame.locator("#f-name").fill("佐藤 次郎")
    frame.locator("#f-email").fill("jiro@example.jp")
    frame.locator("#f-category").select_option(label="配送")
    frame.locator("#f-subject").fill("返品したい")
    frame.locator("#f-body").fill("サイズが合いませんでした")
    frame.get_by_test_id("inquiry-form-send").click()
    frame.get_by_test_id("inquiry-form-done").wait_for()
    with transaction(db) as s:
        made = s.scalars(select(Inquiry).where(Inquiry.subject == "返品したい")).one()
        assert made.channel == "web_form" and made.category_id is not None
