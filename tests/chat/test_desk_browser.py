"""The desk's chat tab in a real Chromium: two agents in two browser contexts race to take one chat (one wins,
the other reads the refusal naming the winner, and cannot reply either); the waiting-chats badge and the page
title follow new chats without a reload, and a desktop notification comes only when the browser already
allows it (nothing asks on load); the tab fits a phone and passes axe in both languages."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from kizuna.auth.models import User
from kizuna.chat import service
from kizuna.chat.models import Chat
from kizuna.chat.schemas import ChatStart, MessageIn
from kizuna.db import transaction
from tests.conftest import browser_timeouts
from tests.phone import phone_problems
from tests.web.conftest import PASSWORD

pytestmark = pytest.mark.browser


def _waiting_chat(engine, name: str = "佐藤 花子") -> int:  # noqa: ANN001
    """A visitor's chat handed over to a person (they asked for one), as the widget's calls leave it."""
    with transaction(engine) as s:
        email = f"visitor{abs(hash(name)) % 10_000}@example.jp"
        chat, _, _ = service.start_chat(s, data=ChatStart(language="ja", name=name, email=email))
        service.post_message(s, chat=chat, data=MessageIn(text="届いた商品が違います"))
        service.request_person(s, chat=chat)
        return chat.id


def _signed_in(browser, live_server: str, email: str, **options):  # noqa: ANN001, ANN003, ANN202
    context = browser.new_context(locale="ja-JP", **options)
    page = context.new_page()
    browser_timeouts(page)
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/customers.*"))
    return context, page


@pytest.mark.both_backends
def test_two_agents_race_to_take_a_chat_and_exactly_one_wins(browser, live_server, db, make_user) -> None:  # noqa: ANN001
    chat_id = _waiting_chat(db)
    emails = [make_user("support", "aoki@example.com", "青木"), make_user("support", "baba@example.com", "馬場")]
    sessions = [_signed_in(browser, live_server, e) for e in emails]
    try:
        pages = [p for _, p in sessions]
        for page in pages:
            page.goto(f"{live_server}/inquiries/chats")
            row = page.locator(f"[data-testid=chats-waiting] [data-chat='{chat_id}']")
            assert "佐藤 花子" in row.inner_text()
            row.locator("a").click()
            page.get_by_test_id("claim-chat").wait_for()
        # Both forms go out before either answer is read: the server sees two takes at once.
        for page in pages:
            page.evaluate("document.querySelector('[data-testid=claim-chat]').closest('form').requestSubmit()")
        for page in pages:
            page.wait_for_load_state("load")
            page.wait_for_selector("[data-testid=chat-done], [data-testid=chat-problem]")
        won = [p for p in pages if p.locator("[data-testid=chat-done]").count()]
        lost = [p for p in pages if p.locator("[data-testid=chat-problem]").count()]
        assert len(won) == 1 and len(lost) == 1
        winner = "青木" if won[0] is pages[0] else "馬場"
        message = lost[0].get_by_test_id("chat-problem").inner_text()
        assert "すでに" in message and winner in message
        assert won[0].get_by_test_id("chat-holder").inner_text() == winner
        # The loser's reply is refused too, naming the holder, with the typed text kept.
        lost[0].goto(f"{live_server}/chats/{chat_id}")
        assert lost[0].get_by_test_id("claim-chat").count() == 0
        assert lost[0].get_by_test_id("release-chat").count() == 0
        lost[0].fill("#f-text", "横から失礼します")
        lost[0].get_by_test_id("send-reply").click()
        assert winner in lost[0].get_by_test_id("chat-problem").inner_text()
        assert lost[0].input_value("#f-text") == "横から失礼します"
        # The winner answers; in the desk tab the chat is in progress, theirs.
        won[0].fill("#f-text", "担当の者です。お調べします。")
        won[0].get_by_test_id("send-reply").click()
        won[0].get_by_test_id("chat-log").locator("li[data-author=agent]").wait_for()
        won[0].goto(f"{live_server}/chats")  # the old address leads to the desk's tab
        assert won[0].url.endswith("/inquiries/chats")
        live = won[0].locator(f"[data-testid=chats-live] [data-chat='{chat_id}']")
        assert winner in live.inner_text()
        assert won[0].locator("[data-testid=chats-waiting] [data-testid=chat-row]").count() == 0
        # Released, it waits for a person again.
        live.locator("a").click()
        won[0].get_by_test_id("release-chat").click()
        expect(won[0].get_by_test_id("chat-done")).to_be_visible()
        expect(won[0].get_by_test_id("claim-chat")).to_be_visible()
    finally:
        for context, _ in sessions:
            context.close()
    with transaction(db) as s:
        chat = s.get(Chat, chat_id)
        assert chat.status == "waiting_agent" and chat.agent_user_id is None


# Records what the page does with desktop notifications (the browser's own object stays behind it).
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  window.__shown = []; window.__asked = 0;
  class Recorded {
    constructor(title) { window.__shown.push(title); }
    static get permission() { return Real.permission; }
    static requestPermission() { window.__asked += 1; return Real.requestPermission(); }
  }
  window.Notification = Recorded;
})();
"""


@pytest.mark.parametrize("permission", ["granted", "default"])
def test_the_badge_and_title_count_waiting_chats_without_a_reload(
    browser, live_server, db, make_user, permission: str
) -> None:  # noqa: ANN001
    email = make_user("support", "ueda@example.com", "上田")
    context, page = _signed_in(browser, live_server, email)
    if permission == "granted":
        context.grant_permissions(["notifications"], origin=live_server)
    context.add_init_script(RECORD_NOTIFICATIONS)
    try:
        page.clock.install()
        page.goto(f"{live_server}/inquiries")
        badge, tab_badge = page.get_by_test_id("nav-chats-badge"), page.get_by_test_id("desk-chats-badge")
        page.clock.run_for(1_000)
        assert badge.is_hidden() and tab_badge.is_hidden()
        assert page.title().startswith("問い合わせ")
        first = _waiting_chat(db, "一人目")
        _waiting_chat(db, "二人目")
        page.clock.run_for(10_500)  # one poll later
        expect(page).to_have_title(re.compile(r"^\(2\) "))
        assert badge.inner_text() == "2" and tab_badge.inner_text() == "2"
        # Taken by someone, a chat no longer waits: the count drops on the next poll.
        with transaction(db) as s:
            agent = s.scalar(select(User).where(User.email == email))
            s.get(Chat, first).agent_user_id = agent.id
            s.get(Chat, first).status = "live"
        page.clock.run_for(10_500)
        expect(page).to_have_title(re.compile(r"^\(1\) "))
        assert badge.inner_text() == "1"
        shown, asked = page.evaluate("[window.__shown, window.__asked]")
        # Nothing asks for permission on its own; a notification only where the browser already allows them.
        assert asked == 0
        assert shown == (["担当者を待っているチャットが 2 件あります"] if permission == "granted" else [])
        # The desk tab offers to turn alerts on only while the browser has not been asked.
        page.goto(f"{live_server}/inquiries/chats")
        offer = page.get_by_test_id("enable-notifications")
        assert offer.is_visible() == (permission == "default")
        expect(page).to_have_title(re.compile(r"^\(1\) "))
    finally:
        context.close()


def test_the_chat_tab_fits_a_phone_and_passes_axe_in_both_languages(sign_in, live_server, db) -> None:  # noqa: ANN001
    chat_id = _waiting_chat(db)
    _waiting_chat(db, "山田")
    page = sign_in("support")
    page.goto(f"{live_server}/chats/{chat_id}")
    page.get_by_test_id("claim-chat").click()
    problems = phone_problems(page, live_server, ["/inquiries/chats", f"/chats/{chat_id}", "/inquiries"])
    assert problems == [], problems
