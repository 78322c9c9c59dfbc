"""Pipelines, deals, activities and tasks through the real API on both backends: the rules, the role rules,
bad input (nothing changed), stage history, audit and outbox messages."""

from __future__ import annotations

from sqlalchemy import select

from kizuna.auth.models import AuditEntry, User
from kizuna.db import transaction
from kizuna.outbox.models import OutboxMessage
from kizuna.sales.models import Deal, Team, team_members
from tests import factories
from tests.conftest import make_token


def _customer(db) -> int:  # noqa: ANN001
    with transaction(db) as s:
        return factories.customer(s, family_name="佐藤", given_name="花子", email="hanako@example.jp").id


def _stages(client) -> list[dict]:  # noqa: ANN001
    pipelines = client.get("/api/v1/pipelines").json()
    return pipelines[0]["stages"]


def _client(app, email: str, role: str):  # noqa: ANN001, ANN202
    from fastapi.testclient import TestClient

    token = make_token(app.state.engine, email, role)
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def _user_id(db, email: str) -> int:  # noqa: ANN001
    with transaction(db) as s:
        return s.scalar(select(User.id).where(User.email == email))


def test_default_pipeline_has_the_japanese_stages_with_english_names(client):
    stages = _stages(client)
    assert [s["name"] for s in stages] == ["アポイント", "ヒアリング", "提案", "交渉", "受注", "失注"]
    assert [s["name_en"] for s in stages] == ["Appointment", "Discovery", "Proposal", "Negotiation", "Won", "Lost"]
    assert [s["kind"] for s in stages][-2:] == ["won", "lost"]
    # Asking again makes no second default pipeline.
    assert len(client.get("/api/v1/pipelines").json()) == 1


def test_deal_moves_through_stages_with_history_audit_and_events(client, db):
    customer_id = _customer(db)
    stages = _stages(client)
    r = client.post("/api/v1/deals", json={"name": "基幹システム刷新", "customer_id": customer_id, "amount": "1200000"})
    assert r.status_code == 201, r.text
    deal = r.json()
    assert deal["stage_id"] == stages[0]["id"] and deal["currency"] == "JPY" and deal["probability"] == 10
    r = client.post(f"/api/v1/deals/{deal['id']}/move", json={"stage_id": stages[1]["id"], "version": deal["version"]})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["probability"] == 25 and moved["version"] == deal["version"] + 1
    r = client.post(
        f"/api/v1/deals/{deal['id']}/move",
        json={"stage_id": stages[4]["id"]},
        headers={"If-Match": f'"{moved["version"]}"'},
    )
    assert r.status_code == 200, r.text
    assert r.json()["closed_at"] is not None
    history = client.get(f"/api/v1/deals/{deal['id']}/history").json()
    assert [(h["from_stage_id"], h["to_stage_id"]) for h in history] == [
        (None, stages[0]["id"]),
        (stages[0]["id"], stages[1]["id"]),
        (stages[1]["id"], stages[4]["id"]),
    ]
    assert all(h["actor"] == "api-admin@example.com" for h in history)
    with transaction(db) as s:
        topics = list(s.scalars(select(OutboxMessage.topic).order_by(OutboxMessage.id)))
        actions = list(
            s.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "deal").order_by(AuditEntry.id))
        )
    assert [t for t in topics if t.startswith("deal.")] == [
        "deal.created", "deal.stage_changed", "deal.stage_changed", "deal.won",
    ]  # fmt: skip
    assert actions == ["deal.create", "deal.move", "deal.move"]


def test_bad_input_is_refused_by_name_and_nothing_changes(client, db):
    customer_id = _customer(db)
    stages = _stages(client)
    other = client.post(
        "/api/v1/pipelines",
        json={"name": "代理店", "stages": [{"name": "紹介"}, {"name": "成約", "kind": "won", "probability": 100}]},
    )
    assert other.status_code == 201, other.text
    deal = client.post("/api/v1/deals", json={"name": "案件A", "customer_id": customer_id, "amount": 500}).json()

    r = client.post(
        f"/api/v1/deals/{deal['id']}/move", json={"stage_id": other.json()["stages"][0]["id"], "version": 1}
    )
    assert r.status_code == 422 and "belongs to pipeline" in r.text
    r = client.post(f"/api/v1/deals/{deal['id']}/move", json={"stage_id": stages[5]["id"], "version": 1})
    assert r.status_code == 422 and "lost_reason" in r.text
    r = client.patch(f"/api/v1/deals/{deal['id']}", json={"amount": "-1", "version": 1})
    assert r.status_code == 422 and "amount" in r.text
    r = client.post("/api/v1/deals", json={"name": "負", "customer_id": customer_id, "amount": -5})
    assert r.status_code == 422
    r = client.post("/api/v1/deals", json={"name": "宛先なし", "amount": 5})
    assert r.status_code == 422 and "customer_id or a company_id" in r.text
    r = client.post("/api/v1/deals", json={"name": "通貨", "customer_id": customer_id, "currency": "YENS"})
    assert r.status_code == 422 and "ISO 4217" in r.text
    after = client.get(f"/api/v1/deals/{deal['id']}").json()
    assert (after["stage_id"], after["amount"], after["version"]) == (stages[0]["id"], "500.00", 1)
    assert len(client.get(f"/api/v1/deals/{deal['id']}/history").json()) == 1

    # A stale version: 409 with the body's version, 412 with If-Match; the other write is kept.
    assert client.patch(f"/api/v1/deals/{deal['id']}", json={"amount": 700, "version": 1}).status_code == 200
    r = client.post(f"/api/v1/deals/{deal['id']}/move", json={"stage_id": stages[1]["id"], "version": 1})
    assert r.status_code == 409
    r = client.patch(f"/api/v1/deals/{deal['id']}", json={"amount": 1}, headers={"If-Match": '"1"'})
    assert r.status_code == 412
    r = client.patch(f"/api/v1/deals/{deal['id']}", json={"amount": 1})
    assert r.status_code == 428
    after = client.get(f"/api/v1/deals/{deal['id']}").json()
    assert (after["stage_id"], after["amount"], after["version"]) == (stages[0]["id"], "700.00", 2)


def test_lost_deal_keeps_its_reason(client, db):
    customer_id = _customer(db)
    stages = _stages(client)
    deal = client.post("/api/v1/deals", json={"name": "案件B", "customer_id": customer_id}).json()
    r = client.post(
        f"/api/v1/deals/{deal['id']}/move", json={"stage_id": stages[5]["id"], "lost_reason": "価格", "version": 1}
    )
    assert r.status_code == 200 and r.json()["lost_reason"] == "価格"
    with transaction(db) as s:
        lost = s.scalar(select(OutboxMessage).where(OutboxMessage.topic == "deal.lost"))
        assert lost.payload["lost_reason"] == "価格" and lost.customer_id == customer_id


def test_reps_edit_their_own_and_their_teams_deals_managers_all_viewers_none(app, db):
    customer_id = _customer(db)
    rep = _client(app, "rep@example.com", "sales")
    mate = _client(app, "mate@example.com", "sales")
    stranger = _client(app, "stranger@example.com", "sales")
    manager = _client(app, "manager@example.com", "manager")
    viewer = _client(app, "viewer@example.com", "viewer")
    with transaction(db) as s:
        team = Team(name="東日本営業")
        s.add(team)
        s.flush()
        ids = [s.scalar(select(User.id).where(User.email == e)) for e in ("rep@example.com", "mate@example.com")]
        s.execute(team_members.insert(), [{"team_id": team.id, "user_id": i} for i in ids])
    deal = rep.post("/api/v1/deals", json={"name": "自分の案件", "customer_id": customer_id}).json()
    assert deal["owner_id"] == ids[0]

    def patch(c, version: int, amount: int) -> int:  # noqa: ANN001
        return c.patch(f"/api/v1/deals/{deal['id']}", json={"amount": amount, "version": version}).status_code

    assert patch(rep, 1, 10) == 200
    assert patch(mate, 2, 20) == 200  # same team
    assert patch(stranger, 3, 30) == 403
    assert patch(viewer, 3, 30) == 403
    assert patch(manager, 3, 40) == 200
    # Everyone reads; "editable" lists what each may change (the same rule as the write).
    for c in (rep, mate, stranger, manager, viewer):
        assert c.get(f"/api/v1/deals/{deal['id']}").status_code == 200
    assert [d["id"] for d in rep.get("/api/v1/deals?editable=true").json()["items"]] == [deal["id"]]
    assert stranger.get("/api/v1/deals?editable=true").json()["items"] == []
    assert [d["id"] for d in stranger.get("/api/v1/deals?editable=false").json()["items"]] == [deal["id"]]
    # A rep cannot hand a deal to someone outside their team, nor create one for them.
    stranger_id = _user_id(db, "stranger@example.com")
    r = rep.patch(f"/api/v1/deals/{deal['id']}", json={"owner_id": stranger_id, "version": 4})
    assert r.status_code == 403
    r = rep.post("/api/v1/deals", json={"name": "他人の", "customer_id": customer_id, "owner_id": stranger_id})
    assert r.status_code == 403
    assert viewer.post("/api/v1/deals", json={"name": "閲覧者", "customer_id": customer_id}).status_code == 403
    assert (
        viewer.post("/api/v1/activities", json={"kind": "call", "subject": "x", "customer_id": customer_id}).status_code
        == 403
    )
    with transaction(db) as s:
        assert s.get(Deal, deal["id"]).amount == 40
    for c in (rep, mate, stranger, manager, viewer):
        c.close()


def test_activities_and_tasks_on_a_deal_reach_its_customer(client, db):
    customer_id = _customer(db)
    deal = client.post("/api/v1/deals", json={"name": "案件C", "customer_id": customer_id}).json()
    r = client.post(
        "/api/v1/activities",
        json={
            "kind": "visit",
            "subject": "訪問",
            "notes": "決裁者と面談",
            "deal_id": deal["id"],
            "duration_minutes": 60,
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["customer_id"] == customer_id
    r = client.post("/api/v1/activities", json={"kind": "fax", "subject": "x", "customer_id": customer_id})
    assert r.status_code == 422
    r = client.post(
        "/api/v1/tasks",
        json={"title": "見積送付", "deal_id": deal["id"], "due_at": "2030-01-10T10:00:00+09:00",
              "remind_at": "2030-01-10T09:00:00+09:00"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    task = r.json()
    r = client.post(
        "/api/v1/tasks",
        json={
            "title": "逆",
            "customer_id": customer_id,
            "due_at": "2030-01-10T10:00:00Z",
            "remind_at": "2030-01-11T10:00:00Z",
        },
    )
    assert r.status_code == 422 and "reminder" in r.text
    r = client.patch(f"/api/v1/tasks/{task['id']}", json={"status": "done", "version": task["version"]})
    assert r.status_code == 200 and r.json()["completed_at"] is not None
    items = client.get(f"/api/v1/tasks?customer_id={customer_id}&status=done").json()["items"]
    assert [t["id"] for t in items] == [task["id"]]
    timeline = client.get(f"/api/v1/customers/{customer_id}/timeline").json()
    kinds = {item["kind"] for item in timeline["items"]}
    assert {"activity", "task"} <= kinds
    with transaction(db) as s:
        topics = set(s.scalars(select(OutboxMessage.topic)))
    assert {"activity.logged", "task.created", "task.completed"} <= topics


def test_openapi_documents_the_sales_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/pipelines",
        "/api/v1/deals",
        "/api/v1/deals/{deal_id}/move",
        "/api/v1/activities",
        "/api/v1/tasks",
    ):
        assert path in paths
