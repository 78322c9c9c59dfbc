"""Imports have the side effects of the API: the same outbox messages (marked as coming from an import, with
the time things happened), and updates audited with their old and new values under the person who ran them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from kizuna.auth import service as auth
from kizuna.auth.models import AuditEntry
from kizuna.auth.permissions import Actor
from kizuna.db import transaction
from kizuna.imports.runner import run_import
from kizuna.outbox.models import OutboxMessage

SYSTEM = Actor.system("test")


def _messages(session, origin: str) -> list[tuple[str, tuple[str, ...], bool]]:
    """(topic, payload keys, has a customer) of every message from ``origin``, in a stable order."""
    session.expire_all()
    rows = session.scalars(select(OutboxMessage).where(OutboxMessage.origin == origin).order_by(OutboxMessage.id))
    return sorted((m.topic, tuple(sorted(m.payload)), m.customer_id is not None) for m in rows)


def test_customers_from_the_api_and_from_an_import_emit_the_same_messages(client, db, session, csv_file):
    for email, opt_in in (("api1@example.jp", "granted"), ("api2@example.jp", None)):
        r = client.post("/api/v1/customers", json={"family_name": "山田", "email": email})
        assert r.status_code == 201
        if opt_in:
            c = r.json()["id"]
            body = {"channel": "email", "status": "granted", "method": "import"}
            assert client.post(f"/api/v1/customers/{c}/consents", json=body).status_code == 201
    path = csv_file(["姓,メールアドレス,メール配信", "山田,imp1@example.jp,希望する", "山田,imp2@example.jp,"])
    report = run_import(db, "customers", path, actor=SYSTEM)
    assert report.inserted == 2
    api = _messages(session, "api")
    assert api == _messages(session, "import")
    assert ("customer.created", ("customer_id",), True) in api
    assert ("consent.granted", ("channel", "customer_id", "purpose"), True) in api


def test_an_import_update_is_audited_with_old_and_new_values_and_announced(db, session, csv_file):
    run_import(
        db, "customers", csv_file(["姓,名,メールアドレス,市区町村", "山田,太郎,t@example.jp,渋谷区"]), actor=SYSTEM
    )
    with transaction(db) as s:
        auth.create_user(s, actor=SYSTEM, email="ops@example.com", password="a-long-pass-phrase", role="marketer")
    with transaction(db) as s:
        person = auth.actor_for_email(s, "ops@example.com")
    path = csv_file(["姓,名,メールアドレス,市区町村", "山田,次郎,t@example.jp,新宿区"], name="second.csv")
    report = run_import(db, "customers", path, actor=person)
    assert report.updated == 1
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "customer.update"))
    assert entry.actor == "ops@example.com" and entry.actor_user_id is not None
    assert entry.details == {"given_name": ["太郎", "次郎"], "city": ["渋谷区", "新宿区"]}
    updated = session.scalar(select(OutboxMessage).where(OutboxMessage.topic == "customer.updated"))
    assert updated.origin == "import" and updated.payload["fields"] == ["city", "given_name"]
    batch = session.scalar(
        select(AuditEntry).where(AuditEntry.action == "import.customers").order_by(AuditEntry.id.desc())
    )
    assert batch.actor == "ops@example.com"


def test_orders_from_the_api_and_from_an_import_emit_order_completed_with_the_order_date(client, db, session, csv_file):
    run_import(db, "customers", csv_file(["顧客ID,姓,メールアドレス", "S-1,山田,s1@example.jp"]), actor=SYSTEM)
    cid = session.scalar(select(OutboxMessage.customer_id).where(OutboxMessage.topic == "customer.created"))
    body = {
        "customer_id": cid,
        "external_id": "API-1",
        "ordered_at": "2023-04-01T10:00:00+09:00",
        "status": "completed",
        "total_amount": "1000",
    }
    assert client.post("/api/v1/orders", json=body).status_code == 201
    path = csv_file(["注文ID,顧客ID,注文日時,合計金額,ステータス", "IMP-1,S-1,2023-04-02 10:00:00,2000,completed"])
    report = run_import(db, "orders", path, actor=SYSTEM)
    assert report.inserted == 1, report.rejects
    api = [m for m in _messages(session, "api") if m[0].startswith("order.")]
    assert api == [m for m in _messages(session, "import") if m[0].startswith("order.")]
    imported = session.scalar(
        select(OutboxMessage).where(OutboxMessage.topic == "order.completed", OutboxMessage.origin == "import")
    )
    assert imported.occurred_at == dt.datetime(2023, 4, 2, 1, 0, tzinfo=dt.UTC)  # Asia/Tokyo 10:00
    assert imported.created_at > imported.occurred_at


def test_events_from_the_api_and_from_an_import_emit_event_recorded(client, db, session, csv_file):
    cid = client.post("/api/v1/customers", json={"family_name": "山田", "external_id": "E-1"}).json()["id"]
    body = {"customer_id": cid, "type": "page_view", "channel": "web", "occurred_at": "2024-01-01T00:00:00Z"}
    assert client.post("/api/v1/events", json=body).status_code == 201
    path = csv_file(["customer_id,type,channel,occurred_at", "E-1,page_view,web,2024-01-02T00:00:00Z"])
    report = run_import(db, "events", path, actor=SYSTEM)
    assert report.inserted == 1, report.rejects
    api = [m for m in _messages(session, "api") if m[0] == "event.recorded"]
    assert api == [m for m in _messages(session, "import") if m[0] == "event.recorded"] != []
    imported = session.scalar(
        select(OutboxMessage).where(OutboxMessage.topic == "event.recorded", OutboxMessage.origin == "import")
    )
    assert imported.occurred_at == dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    assert imported.payload["type"] == "page_view" and imported.customer_id == cid


def test_a_re_import_emits_nothing_new(db, session, csv_file):
    path = csv_file(["姓,メールアドレス,メール配信", "山田,again@example.jp,希望する"])
    run_import(db, "customers", path, actor=SYSTEM)
    count = len(_messages(session, "import"))
    run_import(db, "customers", path, actor=SYSTEM)
    assert len(_messages(session, "import")) == count
