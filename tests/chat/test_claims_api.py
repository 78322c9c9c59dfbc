"""Taking a chat before answering it, over the agents' API on both backends: one holder at a time (409 naming
them for a second agent's take or reply), release and close by the holder or a desk lead, viewers read only,
every step audited; the waiting count and the desk's order (longest-waiting first, with the wait)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from kizuna.auth.models import AuditEntry, User
from kizuna.auth.permissions import Actor
from kizuna.chat import claims, desk
from kizuna.chat.models import Chat, ChatMessage
from kizuna.db import new_session
from kizuna.errors import Conflict


@pytest.fixture
def visitor(app):  # noqa: ANN001, ANN201
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def _waiting_chat(visitor, name: str = "佐藤") -> int:  # noqa: ANN001
    """A chat handed over to a person (the visitor pressed the widget's button); answers its integer id."""
    r = visitor.post("/chat/v1/sessions", json={"language": "ja", "name": name})
    assert r.status_code == 201, r.text
    public_id, secret = r.json()["id"], {"X-Chat-Secret": r.json()["secret"]}
    visitor.post(f"/chat/v1/sessions/{public_id}/messages", json={"text": "注文を変更したい"}, headers=secret)
    assert visitor.post(f"/chat/v1/sessions/{public_id}/handover", headers=secret).json()["status"] == "waiting_agent"
    return public_id, secret


def _id(db, public_id: str) -> int:  # noqa: ANN001
    with new_session(db) as s:
        return s.scalar(select(Chat.id).where(Chat.public_id == public_id))


def _actions(db, chat_id: int) -> list[str]:  # noqa: ANN001
    with new_session(db) as s:
        return list(
            s.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.entity_type == "chat", AuditEntry.entity_id == str(chat_id))
                .order_by(AuditEntry.id)
            )
        )


def test_the_second_agent_is_refused_with_409_naming_the_holder(visitor, client_as, db) -> None:  # noqa: ANN001
    public_id, _ = _waiting_chat(visitor)
    chat_id = _id(db, public_id)
    first, second = client_as("support"), client_as("support")
    assert first.get("/api/v1/chats/waiting").json() == {"waiting": 1}
    taken = first.post(f"/api/v1/chats/{chat_id}/claim")
    assert taken.status_code == 200, taken.text
    assert taken.json()["status"] == "live" and taken.json()["agent_user_id"] is not None
    assert first.get("/api/v1/chats/waiting").json() == {"waiting": 0}
    # Taking it again is harmless for its holder; the other agent is refused, by name, on take and reply alike.
    assert first.post(f"/api/v1/chats/{chat_id}/claim").status_code == 200
    refused = second.post(f"/api/v1/chats/{chat_id}/claim")
    assert refused.status_code == 409
    assert "support-0@example.com" in refused.json()["error"]["message"]
    reply = second.post(f"/api/v1/chats/{chat_id}/messages", json={"text": "横から失礼します"})
    assert reply.status_code == 409 and "support-0@example.com" in reply.json()["error"]["message"]
    assert second.post(f"/api/v1/chats/{chat_id}/release").status_code == 409
    assert second.post(f"/api/v1/chats/{chat_id}/close").status_code == 409
    assert first.post(f"/api/v1/chats/{chat_id}/messages", json={"text": "承ります"}).status_code == 201
    with new_session(db) as s:
        texts = list(s.scalars(select(ChatMessage.text).where(ChatMessage.author == "agent")))
        assert texts == ["承ります"]
    # Released, the chat waits for a person again and the other agent may take it.
    released = first.post(f"/api/v1/chats/{chat_id}/release")
    assert released.status_code == 200 and released.json()["status"] == "waiting_agent"
    assert released.json()["agent_user_id"] is None
    assert second.post(f"/api/v1/chats/{chat_id}/claim").status_code == 200
    assert second.post(f"/api/v1/chats/{chat_id}/close").json()["status"] == "closed"
    closed = first.post(f"/api/v1/chats/{chat_id}/claim")
    assert closed.status_code == 409 and "closed" in closed.json()["error"]["message"]
    assert _actions(db, chat_id) == [
        "chat.hand_over", "chat.claim", "chat.reply", "chat.release", "chat.claim", "chat.close",
    ]  # fmt: skip


def test_a_reply_takes_a_free_chat_and_a_desk_lead_may_release_anyones(visitor, client_as, db) -> None:  # noqa: ANN001
    public_id, _ = _waiting_chat(visitor)
    chat_id = _id(db, public_id)
    support, manager = client_as("support"), client_as("manager")
    assert support.post(f"/api/v1/chats/{chat_id}/messages", json={"text": "はい"}).status_code == 201
    assert _actions(db, chat_id)[-2:] == ["chat.claim", "chat.reply"]
    assert manager.post(f"/api/v1/chats/{chat_id}/messages", json={"text": "私も"}).status_code == 409
    released = manager.post(f"/api/v1/chats/{chat_id}/release")
    assert released.status_code == 200 and released.json()["status"] == "waiting_agent"


def test_viewers_read_chats_but_cannot_take_them(visitor, client_as, db) -> None:  # noqa: ANN001
    public_id, _ = _waiting_chat(visitor)
    chat_id = _id(db, public_id)
    viewer = client_as("viewer")
    assert viewer.get("/api/v1/chats/waiting").json() == {"waiting": 1}
    assert viewer.post(f"/api/v1/chats/{chat_id}/claim").status_code == 403
    assert viewer.post(f"/api/v1/chats/{chat_id}/release").status_code == 403
    assert client_as("sales").post(f"/api/v1/chats/{chat_id}/claim").status_code == 403
    assert client_as("support").post("/api/v1/chats/999/claim").status_code == 404


def test_exactly_one_of_two_racing_takes_wins_in_the_database(visitor, db, make_user) -> None:  # noqa: ANN001
    """Two sessions read the free chat, then both take it: the guarded UPDATE lets one through."""
    from kizuna.auth.service import actor_for

    public_id, _ = _waiting_chat(visitor)
    chat_id = _id(db, public_id)
    emails = [make_user("support", "aoki@example.com", "青木"), make_user("support", "baba@example.com", "馬場")]
    sessions = [new_session(db) for _ in emails]
    try:
        actors = [
            actor_for(s.scalar(select(User).where(User.email == e))) for s, e in zip(sessions, emails, strict=True)
        ]
        for s in sessions:
            assert s.get(Chat, chat_id).agent_user_id is None
        claims.claim(sessions[0], actor=actors[0], chat_id=chat_id)
        sessions[0].commit()
        with pytest.raises(Conflict) as lost:
            claims.claim(sessions[1], actor=actors[1], chat_id=chat_id)
        assert "青木" in lost.value.message and lost.value.params == {"holder": "青木"}
    finally:
        for s in sessions:
            s.rollback()
            s.close()


def test_the_desk_lists_waiting_chats_longest_first_with_their_wait(visitor, db, client_as) -> None:  # noqa: ANN001
    ids = [_id(db, _waiting_chat(visitor, name)[0]) for name in ("一番", "二番", "三番")]
    now = dt.datetime.now(dt.UTC)
    with new_session(db) as s:
        # The second chat waits longest, the first one next; the third was taken and answered, then the visitor
        # wrote again 7 minutes ago.
        for chat_id, minutes in zip(ids, (5, 30, 60), strict=True):
            s.get(Chat, chat_id).handed_over_at = now - dt.timedelta(minutes=minutes)
        s.commit()
    support = client_as("support")
    assert support.post(f"/api/v1/chats/{ids[2]}/messages", json={"text": "お待たせしました"}).status_code == 201
    with new_session(db) as s:
        s.add(
            ChatMessage(chat_id=ids[2], author="customer", text="まだですか", created_at=now - dt.timedelta(minutes=7))
        )
        s.commit()
        view = desk.desk_chats(s, actor=Actor(label="v", role="viewer", origin="test"), now=now)
    assert [r.chat.id for r in view.waiting] == [ids[1], ids[0]]
    assert [r.wait_minutes for r in view.waiting] == [30, 5]
    (live,) = view.live
    assert live.chat.id == ids[2] and live.holder == "support-0@example.com" and live.wait_minutes == 7
    assert not view.can_answer


def test_taking_a_chat_claims_its_ticket_and_a_ticket_held_by_another_refuses_it(visitor, client_as, db) -> None:  # noqa: ANN001
    from kizuna.inquiries.models import Inquiry

    def handed_over(email: str) -> tuple[int, int]:
        r = visitor.post("/chat/v1/sessions", json={"language": "ja", "email": email})
        public_id, secret = r.json()["id"], {"X-Chat-Secret": r.json()["secret"]}
        visitor.post(f"/chat/v1/sessions/{public_id}/messages", json={"text": "返品したい"}, headers=secret)
        visitor.post(f"/chat/v1/sessions/{public_id}/handover", headers=secret)
        with new_session(db) as s:
            chat = s.scalar(select(Chat).where(Chat.public_id == public_id))
            assert chat.inquiry_id is not None  # a known address: the hand-over opened the ticket
            return chat.id, chat.inquiry_id

    first, second = client_as("support"), client_as("support")
    chat_id, inquiry_id = handed_over("hanako@example.jp")
    assert first.post(f"/api/v1/chats/{chat_id}/claim").status_code == 200
    with new_session(db) as s:
        holder = s.get(Inquiry, inquiry_id).claimed_by
        assert holder == s.get(Chat, chat_id).agent_user_id is not None
    # Nobody answers the ticket by e-mail while its chat is live with another agent.
    assert second.post(f"/api/v1/inquiries/{inquiry_id}/claim").status_code == 409

    # The other way round: the ticket is already someone's, so its chat is theirs to take, not a second agent's.
    chat_id, inquiry_id = handed_over("taro@example.jp")
    assert first.post(f"/api/v1/inquiries/{inquiry_id}/claim").status_code == 200
    refused = second.post(f"/api/v1/chats/{chat_id}/claim")
    assert refused.status_code == 409 and "support-0@example.com" in refused.json()["error"]["message"]
    with new_session(db) as s:
        chat = s.get(Chat, chat_id)
        assert chat.agent_user_id is None and chat.status == "waiting_agent"  # nothing half-written
    assert first.post(f"/api/v1/chats/{chat_id}/claim").status_code == 200


def test_the_chat_page_names_the_customer_the_chat_is_linked_to(visitor, ui_client, db) -> None:  # noqa: ANN001
    from kizuna.auth.permissions import Actor as _Actor
    from kizuna.customers import service as customers
    from kizuna.customers.schemas import CustomerCreate

    with new_session(db) as s:
        customers.create_customer(
            s, actor=_Actor.system("test"),
            data=CustomerCreate(family_name="山田", given_name="花子", email="hanako.yamada@example.jp"),
        )  # fmt: skip
        s.commit()
    r = visitor.post("/chat/v1/sessions", json={"language": "ja", "email": "hanako.yamada@example.jp"})
    chat_id = _id(db, r.json()["id"])
    page = ui_client("support").get(f"/chats/{chat_id}").text
    assert "山田 花子</h1>" in page  # the name, not the address the visitor typed
