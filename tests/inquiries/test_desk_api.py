"""The inquiry desk through its API and services, on SQLite and PostgreSQL: opening and linking, repeats, claims,
replies, team rules, SLA, categories, macros and the report."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select

from kizuna.auth.models import AuditEntry
from kizuna.customers.models import Customer
from kizuna.db import new_session, transaction
from kizuna.inquiries import claims, service, sla
from kizuna.inquiries.models import Inquiry, InquiryEvent, InquiryMessage
from kizuna.inquiries.schemas import InquiryCreate
from kizuna.outbox.models import OutboxMessage
from tests import factories
from tests.conftest import make_token


@pytest.fixture
def agents(app):  # noqa: ANN001, ANN201
    """Two support agents and a manager as API clients, with their user ids."""
    from fastapi.testclient import TestClient

    made = {}
    for name, role in (("aoki", "support"), ("baba", "support"), ("chief", "manager"), ("view", "viewer")):
        token = make_token(app.state.engine, f"{name}@example.com", role)
        made[name] = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    with transaction(app.state.engine) as s:
        from kizuna.auth.models import User

        ids = {u.email.split("@")[0]: u.id for u in s.scalars(select(User))}
    yield made, ids
    for c in made.values():
        c.close()


def team(session, name: str, member_ids: list[int]):  # noqa: ANN201
    from kizuna.auth.permissions import Actor
    from kizuna.sales.teams import create_team

    return create_team(session, actor=Actor.system("test"), name=name, member_ids=member_ids)


def open_one(client, **fields):  # noqa: ANN001, ANN003, ANN201
    body = {"subject": "配送について", "body": "荷物が届きません", "email": "hanako@example.jp", **fields}
    r = client.post("/api/v1/inquiries", json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_an_inquiry_by_email_links_to_the_existing_customer_and_a_new_one_is_created_otherwise(client, session):
    known = factories.customer(session, email="hanako@example.jp")
    session.commit()
    first = open_one(client, email="Hanako@Example.jp")
    assert first["customer_id"] == known.id and first["status"] == "new" and first["reference"] == f"KZ-{first['id']}"
    other = open_one(client, email="new.person@example.jp", name="佐藤 次郎", category=None)
    assert other["customer_id"] != known.id
    created = session.get(Customer, other["customer_id"])
    assert created.email == "new.person@example.jp" and created.family_name == "佐藤"
    by_phone = factories.customer(session, email="p@example.jp", phone="090-1234-5678")
    session.commit()
    third = client.post("/api/v1/inquiries", json={"subject": "電話の件", "phone": "０９０－１２３４－５６７８"}).json()
    assert third["customer_id"] == by_phone.id


def test_opening_is_audited_emits_created_and_reaches_the_timeline(client, session):
    opened = open_one(client)
    actions = set(session.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == str(opened["id"]))))
    assert "inquiry.create" in actions
    topics = list(session.scalars(select(OutboxMessage.topic)))
    assert "inquiry.created" in topics
    timeline = client.get(f"/api/v1/customers/{opened['customer_id']}/timeline").json()
    items = timeline["items"] if isinstance(timeline, dict) else timeline
    assert any(i["kind"] == "inquiry" and i["data"]["event"] == "opened" for i in items)


def test_a_repeat_on_the_same_category_within_the_window_is_appended_to_the_open_ticket(client, session):
    client.post("/api/v1/inquiries/categories", json={"name": "配送", "name_en": "Shipping"}).raise_for_status()
    first = open_one(client, category="配送")
    r = client.post(
        "/api/v1/inquiries",
        json={"subject": "まだ届きません", "body": "二回目です", "email": "hanako@example.jp", "category": "Shipping"},
    )
    assert r.status_code == 200 and r.json()["id"] == first["id"]
    bodies = [m["body"] for m in client.get(f"/api/v1/inquiries/{first['id']}").json()["messages"]]
    assert bodies == ["荷物が届きません", "二回目です"]
    other_topic = open_one(client, category=None, subject="返品したい")
    assert other_topic["id"] != first["id"]
    assert session.scalar(select(func.count()).select_from(Inquiry)) == 2


def test_a_repeat_after_the_window_opens_a_new_ticket(client, session):
    first = open_one(client)
    session.execute(Inquiry.__table__.update().values(last_customer_message_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
    session.commit()
    assert open_one(client)["id"] != first["id"]


def test_an_unknown_category_is_refused_naming_the_choices_and_nothing_is_written(client, session):
    client.post("/api/v1/inquiries/categories", json={"name": "請求"}).raise_for_status()
    r = client.post("/api/v1/inquiries", json={"subject": "x", "email": "a@example.jp", "category": "存在しない"})
    assert r.status_code == 422 and "unknown category" in r.text and "請求" in r.text
    assert session.scalar(select(func.count()).select_from(Inquiry)) == 0
    assert session.scalar(select(func.count()).select_from(Customer)) == 0


def test_an_inquiry_without_anyone_asking_is_refused(client):
    r = client.post("/api/v1/inquiries", json={"subject": "x"})
    assert r.status_code == 422 and "customer_id, an email or a phone" in r.text


def test_a_second_agent_claiming_gets_409_naming_the_holder(agents):
    c, ids = agents
    opened = open_one(c["aoki"])
    r = c["aoki"].post(f"/api/v1/inquiries/{opened['id']}/claim")
    assert r.status_code == 200 and r.json()["claimed_by"] == ids["aoki"] and r.json()["status"] == "open"
    again = c["aoki"].post(f"/api/v1/inquiries/{opened['id']}/claim")
    assert again.status_code == 200  # claiming your own ticket again is harmless
    r = c["baba"].post(f"/api/v1/inquiries/{opened['id']}/claim")
    assert r.status_code == 409 and "already claimed by aoki@example.com" in r.text
    r = c["baba"].post(f"/api/v1/inquiries/{opened['id']}/messages", json={"body": "横から返信"})
    assert r.status_code == 409
    r = c["baba"].post(f"/api/v1/inquiries/{opened['id']}/release")
    assert r.status_code == 409
    assert c["aoki"].post(f"/api/v1/inquiries/{opened['id']}/release").json()["claimed_by"] is None
    assert c["baba"].post(f"/api/v1/inquiries/{opened['id']}/claim").json()["claimed_by"] == ids["baba"]


def test_claims_race_on_the_database_and_exactly_one_agent_wins(db, agents):
    c, ids = agents
    opened = open_one(c["aoki"])
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def take(name: str) -> None:
        from kizuna.auth import service as auth
        from kizuna.auth.models import User

        with new_session(db) as s:
            actor = auth.actor_for(s.get(User, ids[name]))
            barrier.wait()
            try:
                claims.claim(s, actor=actor, inquiry_id=opened["id"])
                s.commit()
                results[name] = "won"
            except Exception as exc:  # noqa: BLE001 - the loser's refusal is what the test looks at
                s.rollback()
                results[name] = exc

    threads = [threading.Thread(target=take, args=(n,)) for n in ("aoki", "baba")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = sorted(results.values(), key=str)
    assert sum(1 for o in outcomes if o == "won") == 1, results
    loser = next(o for o in outcomes if o != "won")
    assert getattr(loser, "status_code", None) == 409 and "already claimed" in str(loser)


def test_claiming_a_closed_ticket_is_refused(agents):
    c, _ = agents
    opened = open_one(c["aoki"])
    r = c["chief"].patch(f"/api/v1/inquiries/{opened['id']}", json={"status": "closed", "version": opened["version"]})
    assert r.status_code == 200 and r.json()["status"] == "closed"
    r = c["aoki"].post(f"/api/v1/inquiries/{opened['id']}/claim")
    assert r.status_code == 409 and "is closed" in r.text
    r = c["aoki"].post(f"/api/v1/inquiries/{opened['id']}/messages", json={"body": "返信"})
    assert r.status_code == 409 and "is closed" in r.text


def test_replying_to_another_teams_ticket_is_refused_unless_manager(agents, session):
    c, ids = agents
    support_team = team(session, name="サポート1", member_ids=[ids["aoki"]])
    other_team = team(session, name="サポート2", member_ids=[ids["baba"]])
    session.commit()
    opened = open_one(c["aoki"], team_id=other_team.id)
    r = c["aoki"].post(f"/api/v1/inquiries/{opened['id']}/messages", json={"body": "返信します"})
    assert r.status_code == 403 and "サポート2" in r.text
    assert c["aoki"].post(f"/api/v1/inquiries/{opened['id']}/claim").status_code == 403
    assert c["chief"].post(f"/api/v1/inquiries/{opened['id']}/messages", json={"body": "代わりに"}).status_code == 201
    mine = open_one(c["aoki"], team_id=support_team.id, email="z@example.jp")
    assert c["aoki"].post(f"/api/v1/inquiries/{mine['id']}/messages", json={"body": "はい"}).status_code == 201


def test_a_reply_claims_sets_first_response_and_pending_and_a_note_does_not(agents, session):
    c, ids = agents
    opened = open_one(c["aoki"])
    note = c["aoki"].post(f"/api/v1/inquiries/{opened['id']}/messages", json={"body": "社内メモ", "note": True})
    assert note.status_code == 201 and note.json()["direction"] == "note"
    after_note = c["aoki"].get(f"/api/v1/inquiries/{opened['id']}").json()
    assert after_note["first_responded_at"] is None and after_note["claimed_by"] is None
    r = c["aoki"].post(f"/api/v1/inquiries/{opened['id']}/messages", json={"body": "確認します"})
    assert r.status_code == 201 and r.json()["email_message_id"].startswith("<")
    after = c["aoki"].get(f"/api/v1/inquiries/{opened['id']}").json()
    assert after["claimed_by"] == ids["aoki"] and after["status"] == "pending" and after["first_responded_at"]
    kinds = set(session.scalars(select(InquiryEvent.kind).where(InquiryEvent.inquiry_id == opened["id"])))
    assert {"opened", "replied"} <= kinds


def test_resolving_emits_resolved_and_a_viewer_may_only_read(agents, session):
    c, _ = agents
    opened = open_one(c["aoki"])
    assert c["view"].get(f"/api/v1/inquiries/{opened['id']}").status_code == 200
    assert c["view"].post(f"/api/v1/inquiries/{opened['id']}/claim").status_code == 403
    r = c["aoki"].patch(f"/api/v1/inquiries/{opened['id']}", json={"status": "resolved", "version": 1})
    assert r.status_code == 200 and r.json()["resolved_at"]
    assert "inquiry.resolved" in list(session.scalars(select(OutboxMessage.topic)))
    stale = c["aoki"].patch(f"/api/v1/inquiries/{opened['id']}", json={"priority": "high", "version": 1})
    assert stale.status_code == 409


def test_queues_list_overdue_then_unclaimed_first(agents, session):
    c, ids = agents
    calm = open_one(c["aoki"], email="a1@example.jp", subject="calm")
    held = open_one(c["aoki"], email="a2@example.jp", subject="held")
    late = open_one(c["aoki"], email="a3@example.jp", subject="late", priority="low")
    c["baba"].post(f"/api/v1/inquiries/{held['id']}/claim").raise_for_status()
    session.execute(
        Inquiry.__table__.update()
        .where(Inquiry.id == late["id"])
        .values(first_response_due_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    )
    session.commit()
    order = [i["subject"] for i in c["aoki"].get("/api/v1/inquiries?tab=all").json()]
    assert order[0] == "late" and order.index("calm") < order.index("held")
    assert c["aoki"].get("/api/v1/inquiries?tab=all").json()[0]["overdue"] is True
    assert [i["id"] for i in c["baba"].get("/api/v1/inquiries?tab=mine").json()] == [held["id"]]
    assert held["id"] not in [i["id"] for i in c["aoki"].get("/api/v1/inquiries?tab=unclaimed").json()]
    assert c["aoki"].get("/api/v1/inquiries?tab=nope").status_code == 422
    assert calm["id"]


def test_sla_due_times_count_business_hours_and_skip_the_weekend():
    friday_evening = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)  # 17:00 in Tokyo, a Friday
    due = sla.add_working_minutes(friday_evening, 120, sla.business_hours("09:00-18:00"), "Asia/Tokyo")
    assert due == dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.UTC)  # Monday 10:00 in Tokyo
    assert sla.add_working_minutes(friday_evening, 60, None, "Asia/Tokyo") == friday_evening + dt.timedelta(hours=1)
    urgent, _ = sla.due_times("urgent", friday_evening)
    normal, _ = sla.due_times("normal", friday_evening)
    assert urgent < normal


def test_categories_and_macros_are_kept_by_managers(agents):
    c, _ = agents
    assert c["aoki"].post("/api/v1/inquiries/categories", json={"name": "請求"}).status_code == 403
    made = c["chief"].post("/api/v1/inquiries/categories", json={"name": "請求", "name_en": "Billing"})
    assert made.status_code == 201
    assert c["chief"].post("/api/v1/inquiries/categories", json={"name": "請求"}).status_code == 409
    macro = c["chief"].post("/api/v1/inquiries/macros", json={"name": "お詫び", "body": "ご迷惑をおかけしました。"})
    assert macro.status_code == 201
    assert [m["name"] for m in c["aoki"].get("/api/v1/inquiries/macros").json()] == ["お詫び"]
    assert c["chief"].delete(f"/api/v1/inquiries/macros/{macro.json()['id']}").status_code == 204


def test_the_report_gives_first_response_and_resolution_times_per_agent_and_category(agents):
    c, ids = agents
    c["chief"].post("/api/v1/inquiries/categories", json={"name": "配送"}).raise_for_status()
    opened = open_one(c["aoki"], category="配送")
    c["aoki"].post(f"/api/v1/inquiries/{opened['id']}/messages", json={"body": "対応します"}).raise_for_status()
    c["aoki"].patch(f"/api/v1/inquiries/{opened['id']}", json={"status": "resolved", "version": 3}).raise_for_status()
    report = c["view"].get("/api/v1/inquiries/report").json()
    agent = next(r for r in report["by_agent"] if r["key"] == str(ids["aoki"]))
    assert agent["tickets"] == 1 and agent["responded"] == 1 and agent["resolved"] == 1
    assert agent["median_first_response_minutes"] is not None
    assert report["by_category"][0]["label"] == "配送"


def test_create_inquiry_service_takes_a_chat_transcript(session, admin):
    inquiry = service.create_inquiry(
        session,
        actor=admin,
        data=InquiryCreate(
            subject="チャットから",
            body="人と話したい",
            channel="chat",
            email="chat@example.jp",
            transcript=[
                {"author": "customer", "text": "返品できますか"},
                {"author": "bot", "text": "返品ポリシーはこちらです"},
            ],
        ),
    )
    session.commit()
    messages = list(
        session.scalars(
            select(InquiryMessage).where(InquiryMessage.inquiry_id == inquiry.id).order_by(InquiryMessage.id)
        )
    )
    assert [(m.direction, m.author_label) for m in messages][:2] == [("in", "customer"), ("out", "bot")]
    assert messages[-1].body == "人と話したい" and inquiry.channel == "chat"


def test_a_merge_moves_the_inquiries_to_the_survivor(client, session):
    keep = factories.customer(session, email="keep@example.jp")
    gone = factories.customer(session, email="gone@example.jp")
    session.commit()
    opened = open_one(client, email="gone@example.jp")
    r = client.post(f"/api/v1/customers/{keep.id}/merge", json={"merge_id": gone.id})
    assert r.status_code in (200, 201), r.text
    session.expire_all()
    assert session.get(Inquiry, opened["id"]).customer_id == keep.id
    assert set(session.scalars(select(InquiryMessage.customer_id))) == {keep.id}


def test_erasing_the_customer_erases_their_inquiries(client, session):
    opened = open_one(client)
    customer = client.get(f"/api/v1/customers/{opened['customer_id']}")
    r = client.delete(f"/api/v1/customers/{opened['customer_id']}", headers={"If-Match": customer.headers["ETag"]})
    assert r.status_code == 204, r.text
    assert session.scalar(select(func.count()).select_from(Inquiry)) == 0
    assert session.scalar(select(func.count()).select_from(InquiryMessage)) == 0


def test_a_chat_hand_over_appended_to_an_open_ticket_keeps_its_transcript(client, session):
    first = open_one(client, email="chat@example.jp")
    r = client.post(
        "/api/v1/inquiries",
        json={
            "subject": "チャットから",
            "body": "担当者と話したい",
            "channel": "chat",
            "email": "chat@example.jp",
            "transcript": [{"author": "customer", "text": "まだ届かない"}, {"author": "bot", "text": "確認します"}],
        },
    )
    assert r.status_code == 200 and r.json()["id"] == first["id"]
    thread = client.get(f"/api/v1/inquiries/{first['id']}").json()["messages"]
    assert [m["body"] for m in thread] == ["荷物が届きません", "まだ届かない", "確認します", "担当者と話したい"]


def test_a_too_long_chat_message_is_refused_naming_the_limit_and_nothing_is_written(client, session):
    r = client.post("/api/v1/inquiries", json={"subject": "長文", "body": "あ" * 100_001, "email": "long@example.jp"})
    assert r.status_code == 422 and "body" in r.text
    assert session.scalar(select(func.count()).select_from(Inquiry)) == 0
