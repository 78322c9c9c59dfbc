"""The public chat API the widget calls, and the agents' side, over HTTP on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from kizuna.auth.models import AuditEntry
from kizuna.chat.models import Chat, ChatMessage
from kizuna.db import new_session
from kizuna.knowledge.schemas import ArticleCreate
from kizuna.knowledge.service import create_article

ADMIN_EMAIL = "api-admin@example.com"


@pytest.fixture
def visitor(app):  # noqa: ANN001, ANN201
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture
def articles(db, admin):  # noqa: ANN001, ANN201
    with new_session(db) as s:
        made = [
            create_article(s, actor=admin, data=ArticleCreate(
                title="送料について", body="送料は全国一律550円です。5,000円以上のご注文で送料無料になります。",
                language="ja", tags=["配送"])),
            create_article(s, actor=admin, data=ArticleCreate(
                title="Returns and refunds", body="Unopened items can be returned within 8 days of delivery.",
                language="en", tags=["returns"])),
        ]  # fmt: skip
        s.commit()
        return [a.id for a in made]


def _start(visitor, **body):  # noqa: ANN001, ANN003, ANN202
    r = visitor.post("/chat/v1/sessions", json=body or {"language": "ja"})
    assert r.status_code == 201, r.text
    data = r.json()
    return data["id"], {"X-Chat-Secret": data["secret"]}


def _count(db, model) -> int:  # noqa: ANN001
    with new_session(db) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_visitor_gets_an_answer_with_the_article_it_came_from(visitor, articles, db) -> None:  # noqa: ANN001
    chat_id, secret = _start(visitor)
    r = visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": "送料はいくらですか？"}, headers=secret)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "bot"
    customer, bot = body["messages"]
    assert customer["author"] == "customer" and bot["author"] == "bot"
    assert bot["sources"][0]["title"] == "送料について"
    assert bot["sources"][0]["url"].endswith(f"/faq/{articles[0]}")
    assert "550円" in bot["sources"][0]["snippet"]
    # The link under the answer opens for anyone.
    page = visitor.get(f"/faq/{articles[0]}")
    assert page.status_code == 200 and "送料は全国一律550円" in page.text


def test_asking_for_a_person_hands_over_with_the_conversation(visitor, articles, db, client) -> None:  # noqa: ANN001
    chat_id, secret = _start(visitor, language="en")
    visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": "Can I return an item?"}, headers=secret)
    r = visitor.post(
        f"/chat/v1/sessions/{chat_id}/messages", json={"text": "I want to talk to a human"}, headers=secret
    )
    assert r.json()["status"] == "waiting_agent"
    with new_session(db) as s:
        chat = s.scalar(select(Chat))
        assert chat.handover_reason == "asked" and chat.handed_over_at is not None
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "chat.hand_over")) == 1
    # The agent sees it first in the queue, replies; the visitor's poll gets the reply.
    queue = client.get("/api/v1/chats").json()
    assert queue[0]["public_id"] == chat_id and queue[0]["status"] == "waiting_agent"
    last = max(m["id"] for m in visitor.get(f"/chat/v1/sessions/{chat_id}/messages", headers=secret).json()["messages"])
    reply = client.post(f"/api/v1/chats/{queue[0]['id']}/messages", json={"text": "Hello, this is Sato."})
    assert reply.status_code == 201, reply.text
    polled = visitor.get(f"/chat/v1/sessions/{chat_id}/messages?after={last}", headers=secret).json()
    assert [(m["author"], m["text"]) for m in polled["messages"]] == [("agent", "Hello, this is Sato.")]
    assert polled["status"] == "live"
    # Once a person has the chat the bot stays quiet.
    r = visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": "Thanks"}, headers=secret)
    assert [m["author"] for m in r.json()["messages"]] == ["customer"]


def test_a_question_the_base_does_not_cover_is_handed_over(visitor, articles, db) -> None:  # noqa: ANN001
    chat_id, secret = _start(visitor)
    r = visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": "明日の天気は？"}, headers=secret)
    assert r.json()["status"] == "waiting_agent"
    with new_session(db) as s:
        assert s.scalar(select(Chat.handover_reason)) == "not_confident"


def test_hand_over_builds_the_inquiry_transcript_once(visitor, articles, db) -> None:  # noqa: ANN001
    from kizuna.chat.service import hand_over

    chat_id, secret = _start(visitor)
    visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": "送料はいくら？"}, headers=secret)
    with new_session(db) as s:
        chat = s.scalar(select(Chat))
        data = hand_over(s, chat.id, "asked")
        s.commit()
        assert data["channel"] == "chat" and data["subject"].startswith("チャット: 送料")
        assert [m["author"] for m in data["transcript"]] == ["bot", "customer", "bot"]
        assert "送料について" in data["transcript"][2]["text"]
        assert hand_over(s, chat.id, "asked") == {}  # a second hand-over opens nothing


def test_giving_an_email_links_the_chat_to_the_customer(visitor, client, db) -> None:  # noqa: ANN001
    customer = client.post("/api/v1/customers", json={"email": "hanako@example.jp", "family_name": "山田"}).json()
    chat_id, secret = _start(visitor)
    r = visitor.post(f"/chat/v1/sessions/{chat_id}/contact", json={"email": "Hanako@Example.jp"}, headers=secret)
    assert r.status_code == 200, r.text
    with new_session(db) as s:
        assert s.scalar(select(Chat.customer_id)) == customer["id"]
    # The chat is on the customer's timeline.
    items = client.get(f"/api/v1/customers/{customer['id']}/timeline").json()["items"]
    assert [(i["kind"], i["data"]["status"]) for i in items if i["kind"] == "chat"] == [("chat", "bot")]


def test_bad_input_is_refused_and_nothing_is_stored(visitor, articles, db) -> None:  # noqa: ANN001
    chat_id, secret = _start(visitor)
    before = _count(db, ChatMessage)
    huge = visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": "あ" * 100_000}, headers=secret)
    assert huge.status_code == 422 and huge.json()["error"]["field"] == "text"
    assert "4000" in huge.json()["error"]["message"]
    empty = visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": "   "}, headers=secret)
    assert empty.status_code == 422 and empty.json()["error"]["field"] == "text"
    unknown = visitor.post("/chat/v1/sessions/nosuchchat/messages", json={"text": "hi"}, headers=secret)
    assert unknown.status_code == 404
    wrong = visitor.post(
        f"/chat/v1/sessions/{chat_id}/messages", json={"text": "hi"}, headers={"X-Chat-Secret": "guess"}
    )
    assert wrong.status_code == 403 and "secret" in wrong.json()["error"]["message"]
    assert visitor.get(f"/chat/v1/sessions/{chat_id}/messages").status_code == 403
    assert _count(db, ChatMessage) == before


def test_only_allowed_sites_may_call_the_chat_from_a_page(visitor, client) -> None:  # noqa: ANN001
    site = "https://shop-cors.example"
    refused = visitor.options("/chat/v1/sessions", headers={"Origin": site, "Access-Control-Request-Method": "POST"})
    assert refused.status_code == 403 and "may not use this chat" in refused.json()["error"]["message"]
    assert client.post("/api/v1/chats/sites", json={"origin": site + "/"}).json()["origin"] == site
    pre = visitor.options("/chat/v1/sessions", headers={"Origin": site, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == site
    assert "x-chat-secret" in pre.headers["access-control-allow-headers"].lower()
    r = visitor.post("/chat/v1/sessions", json={}, headers={"Origin": site})
    assert r.status_code == 201 and r.headers["access-control-allow-origin"] == site
    bad = client.post("/api/v1/chats/sites", json={"origin": "shop.example/path"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "origin"


def test_a_site_allowed_by_another_process_works_within_a_second(visitor, db, admin) -> None:  # noqa: ANN001
    import time

    from kizuna.chat.service import add_origin

    first, later = "https://first.example", "https://later.example"
    with new_session(db) as s:
        add_origin(s, actor=admin, origin=first)
        s.commit()
    # This process reads the allowed sites once (and keeps them for a few seconds)...
    assert visitor.options("/chat/v1/sessions", headers={"Origin": first}).status_code == 204
    # ...then another process (the CLI, another server) allows a second site: not refused for the cache's life.
    with new_session(db) as s:
        add_origin(s, actor=admin, origin=later)
        s.commit()
    time.sleep(0.6)
    r = visitor.post("/chat/v1/sessions", json={}, headers={"Origin": later})
    assert r.status_code == 201 and r.headers["access-control-allow-origin"] == later


def test_rate_limit_refuses_a_flood_with_429(visitor, articles, monkeypatch) -> None:  # noqa: ANN001
    from kizuna.config import get_settings

    monkeypatch.setattr(get_settings(), "chat_messages_per_minute", 3)
    chat_id, secret = _start(visitor)
    codes = [
        visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": f"送料 {i}"}, headers=secret).status_code
        for i in range(4)
    ]
    assert codes == [201, 201, 201, 429]


def test_roles_viewer_reads_support_answers(visitor, articles, client_as) -> None:  # noqa: ANN001
    chat_id, secret = _start(visitor)
    visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": "担当者と話したい"}, headers=secret)
    viewer, support = client_as("viewer"), client_as("support")
    row = viewer.get("/api/v1/chats").json()[0]
    assert viewer.post(f"/api/v1/chats/{row['id']}/messages", json={"text": "hi"}).status_code == 403
    assert support.post(f"/api/v1/chats/{row['id']}/messages", json={"text": "はい"}).status_code == 201
    assert viewer.post("/api/v1/knowledge", json={"title": "x", "body": "y", "language": "ja"}).status_code == 403
    assert support.post("/api/v1/chats/sites", json={"origin": "https://a.example"}).status_code == 403


def test_a_merge_moves_the_chat_and_erasing_the_customer_erases_it(visitor, client, db, admin) -> None:  # noqa: ANN001
    from kizuna.customers.merge import merge_customers

    keep = client.post("/api/v1/customers", json={"email": "keep@example.jp", "family_name": "山田"}).json()
    gone = client.post("/api/v1/customers", json={"email": "gone@example.jp", "family_name": "山田"}).json()
    chat_id, secret = _start(visitor, language="ja", email="gone@example.jp")
    visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": "送料は？"}, headers=secret)
    with new_session(db) as s:
        merge_customers(s, actor=admin, survivor_id=keep["id"], merged_id=gone["id"], reason="same person")
        s.commit()
        assert s.scalar(select(Chat.customer_id)) == keep["id"]
    r = client.delete(f"/api/v1/customers/{keep['id']}", headers={"If-Match": 'W/"1"'})
    assert r.status_code == 204, r.text
    assert _count(db, Chat) == 0 and _count(db, ChatMessage) == 0


def test_a_second_agent_is_refused_and_a_closed_chat_takes_no_more(visitor, articles, client_as) -> None:  # noqa: ANN001
    chat_id, secret = _start(visitor)
    visitor.post(f"/chat/v1/sessions/{chat_id}/handover", headers=secret)
    first, second = client_as("support"), client_as("support")
    row = first.get("/api/v1/chats").json()[0]
    assert row["status"] == "waiting_agent"
    assert first.post(f"/api/v1/chats/{row['id']}/messages", json={"text": "担当します"}).status_code == 201
    taken = second.post(f"/api/v1/chats/{row['id']}/messages", json={"text": "私も"})
    assert taken.status_code == 409 and "another agent" in taken.json()["error"]["message"]
    assert first.post(f"/api/v1/chats/{row['id']}/close").json()["status"] == "closed"
    late = visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": "まだいますか"}, headers=secret)
    assert late.status_code == 409 and "closed" in late.json()["error"]["message"]


def test_hand_over_opens_one_inquiry_with_the_conversation_once_the_visitor_is_known(visitor, articles, db, client):  # noqa: ANN001
    from kizuna.inquiries.models import Inquiry, InquiryMessage

    chat_id, secret = _start(visitor)
    visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": "送料はいくら？"}, headers=secret)
    r = visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": "担当者と話したい"}, headers=secret)
    assert r.json()["status"] == "waiting_agent"
    with new_session(db) as s:
        # Nobody to answer by mail yet: the ticket waits for the visitor's address.
        assert s.scalar(select(func.count()).select_from(Inquiry)) == 0
    r = visitor.post(f"/chat/v1/sessions/{chat_id}/contact", json={"email": "new-visitor@example.jp"}, headers=secret)
    assert r.status_code == 200, r.text
    visitor.post(f"/chat/v1/sessions/{chat_id}/contact", json={"email": "new-visitor@example.jp"}, headers=secret)
    with new_session(db) as s:
        (inquiry,) = s.scalars(select(Inquiry)).all()
        chat = s.scalar(select(Chat))
        assert chat.inquiry_id == inquiry.id and inquiry.channel == "chat"
        assert inquiry.customer_id == chat.customer_id is not None  # a new customer for the new address
        texts = " ".join(
            m.body for m in s.scalars(select(InquiryMessage).where(InquiryMessage.inquiry_id == inquiry.id))
        )
        assert "送料はいくら？" in texts and "担当者と話したい" in texts
    # A known visitor's hand-over opens the ticket at once, in the desk's queue.
    customer = client.post("/api/v1/customers", json={"email": "known@example.jp"}).json()
    chat_id, secret = _start(visitor)
    visitor.post(f"/chat/v1/sessions/{chat_id}/contact", json={"email": "known@example.jp"}, headers=secret)
    visitor.post(f"/chat/v1/sessions/{chat_id}/messages", json={"text": "人と話したい"}, headers=secret)
    queue = client.get("/api/v1/inquiries?tab=all").json()
    items = queue["items"] if isinstance(queue, dict) else queue
    assert any(i["customer_id"] == customer["id"] and i["channel"] == "chat" for i in items)
