"""The chat widget in a real Chromium, on a page of another site (a real HTTP server on another port): the
visitor asks, sees the answer with its article, asks for a person; a support agent (a second browser context)
opens the chat from /chats and replies; the visitor's widget shows the reply. The pages fit a phone and pass
axe-core in both languages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kizuna.auth.permissions import Actor
from kizuna.chat.service import add_origin
from kizuna.db import transaction
from kizuna.knowledge.schemas import ArticleCreate
from kizuna.knowledge.service import create_article
from tests.conftest import browser_timeouts, free_port
from tests.knowledge import evalset
from tests.phone import page_problems, phone_problems

pytestmark = pytest.mark.browser
ADMIN = Actor.system("test")


@pytest.fixture
def shop_site(live_server: str) -> Iterator[str]:
    """Another site (another port) whose page embeds the widget with one script tag."""
    html = (
        '<!doctype html><html lang="ja"><head><meta charset="utf-8"><meta name="viewport" '
        'content="width=device-width, initial-scale=1"><title>木漏れ日茶房</title></head><body><main>'
        "<h1>木漏れ日茶房</h1><p>おいしい日本茶の専門店です。</p></main>"
        f'<script src="{live_server}/js/kizuna-chat.js" data-lang="ja" data-poll="1" defer></script>'
        "</body></html>"
    ).encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=5)


def _seed(db, site: str) -> None:  # noqa: ANN001
    with transaction(db) as s:
        for a in evalset.articles():
            create_article(s, actor=ADMIN, data=ArticleCreate(
                title=a["title"], body=a["body"], language=a["language"], tags=a["tags"]))  # fmt: skip
        add_origin(s, actor=ADMIN, origin=site)


def test_visitor_asks_then_an_agent_answers_live(live_server, shop_site, sign_in, browser, db) -> None:  # noqa: ANN001
    _seed(db, shop_site)
    context = browser.new_context(locale="ja-JP", viewport={"width": 390, "height": 800})
    visitor = context.new_page()
    browser_timeouts(visitor)
    try:
        visitor.goto(shop_site)
        visitor.get_by_test_id("kz-chat-open").click()
        log = visitor.get_by_test_id("kz-chat-log")
        log.locator("li[data-author=bot]").first.wait_for()
        visitor.get_by_test_id("kz-chat-input").fill("定期便をやめたいです")
        visitor.get_by_test_id("kz-chat-send").click()
        article = log.locator("[data-testid=kz-chat-sources] a", has_text="定期便の解約")
        article.wait_for()
        assert "/faq/" in (article.get_attribute("href") or "")
        assert not page_problems(visitor, "widget")
        visitor.get_by_test_id("kz-chat-input").fill("担当者と話したい")
        visitor.get_by_test_id("kz-chat-send").click()
        log.locator("li[data-author=bot]", has_text="担当者におつなぎします").wait_for()
        # Handed over, the widget offers to leave an e-mail address for the reply.
        visitor.get_by_test_id("kz-chat-email").fill("hanako@example.jp")
        visitor.get_by_test_id("kz-chat-contact").locator("button").click()
        visitor.get_by_test_id("kz-chat-contact").wait_for(state="hidden")
        assert visitor.get_by_test_id("kz-chat-person").is_hidden()

        agent = sign_in("support", "agent@example.com")
        agent.goto(f"{live_server}/chats")
        row = agent.locator("[data-testid=chat-row][data-status=waiting_agent]")
        assert row.count() == 1
        assert "hanako@example.jp" in row.inner_text()
        row.locator("a").click()
        assert "定期便をやめたいです" in agent.get_by_test_id("chat-log").inner_text()
        agent.fill("#f-text", "担当の佐藤です。解約のお手続きをご案内します。")
        agent.get_by_test_id("send-reply").click()
        agent.get_by_test_id("chat-log").locator("li[data-author=agent]").wait_for()

        log.locator("li[data-author=agent]", has_text="担当の佐藤です").wait_for()
        # The visitor answers; the agent's open chat page shows it without a reload.
        visitor.get_by_test_id("kz-chat-input").fill("よろしくお願いします")
        visitor.get_by_test_id("kz-chat-send").click()
        agent.get_by_test_id("chat-log").locator("li[data-author=customer]", has_text="よろしくお願いします").wait_for()
        chat_page = agent.url.removeprefix(live_server)
        pages = ["/chats", chat_page, "/knowledge", "/knowledge/new", "/knowledge/1", "/knowledge?ask=送料"]
        problems = phone_problems(agent, live_server, pages)
        assert not problems, problems
    finally:
        context.close()
