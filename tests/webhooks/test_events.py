"""Each public event type's body, backfill left out unless asked, paused and deleted subscriptions."""

from __future__ import annotations

import datetime as dt
import json

from kizuna.auth.permissions import Actor
from kizuna.customers.merge import merge_customers
from kizuna.customers.schemas import CustomerCreate
from kizuna.customers.service import create_customer
from kizuna.imports.runner import run_import
from kizuna.segments import service as segments
from kizuna.segments.schemas import SegmentCreate
from kizuna.webhooks import service
from tests import factories
from tests.webhooks.conftest import drain, subscribe

IMPORTER = Actor.system("test-import", origin="import")


def _bodies(receiver) -> list[dict]:  # noqa: ANN001
    return [json.loads(r.body) for r in receiver.requests]


def _import_customers(db, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "customers.csv"
    path.write_text("email,family_name,given_name\r\nold1@example.jp,古川,一郎\r\nold2@example.jp,古川,二郎\r\n")
    report = run_import(db, "customers", path, actor=IMPORTER)
    assert report.counts()["inserted"] == 2


def test_imported_history_is_not_sent_unless_the_subscription_asks(
    db, session, admin, receiver, allow_loopback, tmp_path
):
    subscribe(session, admin, receiver.url("/live"), ["customer.created"], name="live-only")
    subscribe(session, admin, receiver.url("/all"), ["customer.created"], name="with-backfill", include_backfill=True)
    _import_customers(db, tmp_path)
    create_customer(session, actor=admin, data=CustomerCreate(email="live@example.jp"))
    session.commit()
    drain(db)
    by_path: dict[str, list[dict]] = {}
    for request in receiver.requests:
        by_path.setdefault(request.path, []).append(json.loads(request.body))
    assert [b["data"]["customer"]["email"] for b in by_path["/live"]] == ["live@example.jp"]
    sent = sorted((b["data"]["customer"]["email"], b["backfill"]) for b in by_path["/all"])
    assert sent == [("live@example.jp", False), ("old1@example.jp", True), ("old2@example.jp", True)]


def test_order_completed_carries_the_order_and_its_lines(db, session, admin, receiver, allow_loopback):
    subscribe(session, admin, receiver.url(), ["order.completed"])
    customer = factories.customer(session, email="buyer@example.jp", family_name="佐藤")
    factories.product(session, sku="TEA-1", name="煎茶", price=1200)
    order = factories.order(
        session,
        customer_id=customer.id,
        ordered_at=dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.UTC),
        lines=[{"sku": "TEA-1", "quantity": 2, "unit_price": "1200"}],
    )
    session.commit()
    drain(db)
    (body,) = _bodies(receiver)
    assert body["type"] == "order.completed"
    assert body["occurred_at"] == "2026-11-01T03:00:00Z"
    assert body["data"]["order"]["id"] == order.id
    assert body["data"]["order"]["total_amount"] in ("2400.00", "2400")
    assert [(line["sku"], line["quantity"]) for line in body["data"]["order"]["lines"]] == [("TEA-1", 2)]
    assert body["data"]["customer"]["family_name"] == "佐藤"


def test_segment_entries_after_the_first_refresh_are_sent(db, session, admin, receiver, allow_loopback):
    subscribe(session, admin, receiver.url(), ["segment.entered", "segment.exited"])
    factories.customer(session, email="t1@example.jp", prefecture="東京都")
    rule = {"attribute": "prefecture", "op": "eq", "value": "東京都"}
    segment = segments.create_segment(session, actor=admin, data=SegmentCreate(name="東京の顧客", rule=rule))
    session.commit()
    segments.refresh(session, segment.id, actor=admin)  # the first refresh: its members are backfill
    session.commit()
    drain(db)
    assert receiver.requests == []
    late = factories.customer(session, email="t2@example.jp", prefecture="東京都")
    session.commit()
    segments.refresh(session, segment.id, actor=admin, full=True)
    session.commit()
    drain(db)
    (body,) = _bodies(receiver)
    assert body["type"] == "segment.entered" and body["backfill"] is False
    assert body["data"]["segment"] == {"id": segment.id, "name": "東京の顧客"}
    assert body["data"]["customer"]["id"] == late.id


def test_a_merge_names_both_records(db, session, admin, receiver, allow_loopback):
    subscribe(session, admin, receiver.url(), ["customer.merged"])
    a = factories.customer(session, email="a@example.jp")
    b = factories.customer(session, email="b@example.jp")
    session.commit()
    merge_customers(session, actor=admin, survivor_id=a.id, merged_id=b.id, reason="same person")
    session.commit()
    drain(db)
    (body,) = _bodies(receiver)
    assert body["data"]["customer_id"] == a.id and body["data"]["merged_id"] == b.id
    assert body["data"]["customer"]["email"] == "a@example.jp"


def test_a_subscription_paused_before_sending_sends_nothing(db, session, admin, receiver, allow_loopback):
    subscribe(session, admin, receiver.url(), ["customer.created"])
    (subscription,) = service.list_subscriptions(session, actor=admin)
    create_customer(session, actor=admin, data=CustomerCreate(email="p@example.jp"))
    session.commit()
    from kizuna.outbox import worker

    worker.run_once(db)  # fans out only
    service.update_subscription(session, actor=admin, subscription_id=subscription.id, active=False)
    session.commit()
    drain(db)
    assert receiver.requests == []
    (view,) = service.list_deliveries(session, actor=admin)
    assert view.status == "skipped" and "paused" in (view.last_error or "")
    create_customer(session, actor=admin, data=CustomerCreate(email="q@example.jp"))
    session.commit()
    drain(db)
    assert len(service.list_deliveries(session, actor=admin)) == 1  # nothing fans out to a paused subscription


def test_unknown_events_are_refused_with_the_list(session, admin):
    import pytest

    from kizuna.errors import ValidationError
    from kizuna.messaging import webhook_admin

    endpoint, _ = webhook_admin.create_endpoint(session, actor=admin, name="x", url="https://93.184.215.14/h")
    with pytest.raises(ValidationError, match="unknown event customer.deleted; one of customer.created"):
        service.create_subscription(session, actor=admin, endpoint_id=endpoint.id, events=["customer.deleted"])
    with pytest.raises(ValidationError, match="at least one event"):
        service.create_subscription(session, actor=admin, endpoint_id=endpoint.id, events=[])


def test_without_a_subscription_a_message_gets_no_webhooks_delivery(db, session, admin, receiver, allow_loopback):
    from sqlalchemy import select

    from kizuna.outbox.models import OutboxDelivery

    create_customer(session, actor=admin, data=CustomerCreate(email="none@example.jp"))
    session.commit()
    assert "webhooks" not in set(session.scalars(select(OutboxDelivery.subscriber)))
    subscribe(session, admin, receiver.url(), ["order.completed"])
    create_customer(session, actor=admin, data=CustomerCreate(email="other@example.jp"))
    session.commit()
    assert "webhooks" not in set(session.scalars(select(OutboxDelivery.subscriber)))  # not a subscribed event


def test_the_log_follows_a_merge_and_goes_with_a_deleted_customer(db, session, admin, receiver, allow_loopback):
    from kizuna.customers.service import delete_customer

    subscribe(session, admin, receiver.url(), ["customer.created"])
    a = create_customer(session, actor=admin, data=CustomerCreate(email="keep@example.jp"))
    b = create_customer(session, actor=admin, data=CustomerCreate(email="fold@example.jp"))
    session.commit()
    drain(db)
    merge_customers(session, actor=admin, survivor_id=a.id, merged_id=b.id, reason="same person")
    session.commit()
    assert {v.customer_id for v in service.list_deliveries(session, actor=admin)} == {a.id}
    delete_customer(session, actor=admin, customer_id=a.id, expected_version=None)
    session.commit()
    assert service.list_deliveries(session, actor=admin) == []
