"""The Segment-compatible tracking API, spoken to by Segment's own Python SDK and by hand-made requests."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json

import pytest
from sqlalchemy import func, select, update

from kizuna.auth.permissions import Actor
from kizuna.customers.models import Customer, CustomerIdentity
from kizuna.db import new_session
from kizuna.events import recorded
from kizuna.events.models import Event
from kizuna.ingest import sources
from kizuna.ingest.models import Source
from kizuna.outbox.models import OutboxDelivery, OutboxMessage

ADMIN = Actor.system("test")


@pytest.fixture
def write_key(db) -> str:  # noqa: ANN001
    with new_session(db) as s:
        _, key = sources.create_source(s, actor=ADMIN, name="shop site")
        s.commit()
    return key


@pytest.fixture
def tracker(app, write_key):  # noqa: ANN001, ANN201
    from fastapi.testclient import TestClient

    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    with TestClient(app, headers={"Authorization": f"Basic {auth}"}) as c:
        yield c


def _events(db) -> list[Event]:  # noqa: ANN001
    with new_session(db) as s:
        return list(s.scalars(select(Event).order_by(Event.id)))


def _now(delta: float = 0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delta)).isoformat()


def test_official_python_sdk_sends_to_kizuna(live_server, write_key, db) -> None:  # noqa: ANN001
    import segment.analytics as analytics

    failures: list[Exception] = []
    client = analytics.Client(write_key, host=live_server, on_error=lambda e, batch: failures.append(e), max_retries=1)
    client.identify("user-1", {"email": "Hanako@Example.jp", "lastName": "山田", "firstName": "花子", "plan": "gold"})
    client.track("user-1", "Order Completed", {"revenue": 4980, "currency": "JPY"})
    client.page("user-1", "Docs", "Getting Started", {"url": "https://shop.example/docs"})
    client.track(anonymous_id="anon-xyz", event="Product Viewed", properties={"sku": "T-1"})
    client.flush()
    client.shutdown()
    assert failures == []
    events = _events(db)
    assert [e.type for e in events] == ["Order Completed", "page_view", "Product Viewed"]
    assert events[0].properties == {"revenue": 4980, "currency": "JPY"}
    assert events[1].properties["name"] == "Getting Started" and events[1].channel == "web"
    with new_session(db) as s:
        person = s.get(Customer, events[0].customer_id)
        assert (person.status, person.external_id, person.email, person.full_name) == (
            "active",
            "user-1",
            "hanako@example.jp",
            "山田 花子",
        )
        assert person.attributes == {"plan": "gold"}
        visitor = s.get(Customer, events[2].customer_id)
        assert visitor.status == "anonymous"
        source = s.scalar(select(Source))
        assert source.event_count == 4 and source.last_seen_at is not None


def test_one_bad_message_does_not_cost_the_batch(tracker, db) -> None:  # noqa: ANN001
    batch = [
        {"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "m1"},
        {"type": "track", "event": "Nobody", "messageId": "m2"},
        {"type": "track", "userId": "u1", "messageId": "m3"},
        {"type": "track", "userId": "u1", "event": "Later", "timestamp": _now(86400 * 30), "messageId": "m4"},
        {"type": "fly", "userId": "u1", "messageId": "m5"},
        {"type": "page", "anonymousId": "a1", "name": "Home", "messageId": "m6"},
    ]
    r = tracker.post("/v1/batch", json={"batch": batch})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["accepted"] == 2
    rejected = {x["messageId"]: x for x in body["rejected"]}
    assert set(rejected) == {"m2", "m3", "m4", "m5"}
    assert "userId or an anonymousId" in rejected["m2"]["error"]
    assert rejected["m3"]["field"] == "event"
    assert "future" in rejected["m4"]["error"]
    assert [e.type for e in _events(db)] == ["Signed Up", "page_view"]
    # A retried batch keeps nothing twice (Segment's SDKs resend a batch whose answer they missed).
    again = tracker.post("/v1/batch", json={"batch": batch}).json()
    assert again["duplicates"] == 2 and again["accepted"] == 0
    assert len(_events(db)) == 2


def test_clock_skew_is_corrected_with_sent_at(tracker, db) -> None:  # noqa: ANN001
    # The device's clock is a day ahead: the call happened 10 s before it was sent.
    device_now = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    call = {
        "userId": "u1",
        "event": "Clicked",
        "timestamp": (device_now - dt.timedelta(seconds=10)).isoformat(),
        "sentAt": device_now.isoformat(),
    }
    assert tracker.post("/v1/track", json=call).json()["accepted"] == 1
    (event,) = _events(db)
    lag = event.received_at - event.occurred_at
    assert dt.timedelta(seconds=9) < lag < dt.timedelta(seconds=12)


def test_bad_requests_are_refused_as_segment_documents(tracker, app, db) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    r = tracker.post("/v1/track", content=b'{"userId": "u1", "event": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    big = {"userId": "u1", "event": "Big", "properties": {"text": "x" * 33_000}}
    r = tracker.post("/v1/track", json=big)
    assert r.status_code == 400 and "32 KB" in r.json()["error"]
    r = tracker.post("/v1/batch", json={"batch": [big] * 16})
    assert r.status_code == 400 and "500 KB" in r.json()["error"]
    r = tracker.post("/v1/batch", json={"batch": [big, {"userId": "u1", "event": "Small", "type": "track"}]})
    assert r.status_code == 200
    assert [x["index"] for x in r.json()["rejected"]] == [0] and "32 KB" in r.json()["rejected"][0]["error"]
    assert tracker.post("/v1/batch", json={"nothing": []}).status_code == 400
    with TestClient(app) as anonymous:
        r = anonymous.post("/v1/track", json={"userId": "u1", "event": "X"})
        assert r.status_code == 401 and "write key" in r.json()["error"]
        wrong = base64.b64encode(b"kzw_wrong:").decode()
        r = anonymous.post(
            "/v1/track", json={"userId": "u1", "event": "X"}, headers={"Authorization": f"Basic {wrong}"}
        )
        assert r.status_code == 401 and r.json()["error"] == "unknown write key"
    assert [e.type for e in _events(db)] == ["Small"]


def test_write_key_in_body_gzip_and_revocation(app, write_key, db) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        body = gzip.compress(json.dumps({"writeKey": write_key, "anonymousId": "a1", "name": "Home"}).encode())
        r = c.post("/v1/page", content=body, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})
        assert r.status_code == 200 and r.json()["accepted"] == 1
        assert r.headers["access-control-allow-origin"] == "*"
        assert c.options("/v1/page").status_code == 204
        with new_session(db) as s:
            sources.revoke_source(s, actor=ADMIN, ref="shop site")
            s.commit()
        r = c.post("/v1/page", json={"writeKey": write_key, "anonymousId": "a1"})
        assert r.status_code == 401 and "revoked" in r.json()["error"]


def test_a_tracked_batch_emits_one_events_recorded_message(tracker, db) -> None:  # noqa: ANN001
    tracker.post("/v1/batch", json={"batch": [{"type": "track", "userId": "u1", "event": f"E {i}"} for i in range(3)]})
    tracker.post("/v1/track", json={"userId": "u2", "event": "Signed Up"})
    with new_session(db) as s:
        messages = list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        events = sorted(s.scalars(select(Event.id)))
        deliveries = s.scalars(select(OutboxDelivery.subscriber).where(OutboxDelivery.message_id == messages[-1].id))
        assert list(deliveries) == ["journeys"]
    batches = [m for m in messages if m.topic == "events.recorded"]
    assert not [m for m in messages if m.topic == "event.recorded"]
    assert [m.payload["count"] for m in batches] == [3, 1]
    assert [i for m in batches for i in recorded.ids_of(m.payload)] == events
    assert all(m.origin == "tracking" and m.customer_id is None for m in batches)


def test_identities_are_rows_of_the_customer(tracker, db) -> None:  # noqa: ANN001
    tracker.post("/v1/identify", json={"userId": "u9", "anonymousId": "a9", "traits": {"email": "u9@example.jp"}})
    with new_session(db) as s:
        rows = {(i.kind, i.value) for i in s.scalars(select(CustomerIdentity))}
        assert rows == {("external_id", "u9"), ("anonymous_id", "a9"), ("email", "u9@example.jp")}
        assert s.scalar(select(func.count()).select_from(Customer)) == 1


def test_events_api_takes_event_names_as_tracking_sdks_send_them(client) -> None:  # noqa: ANN001
    base = {"anonymous_id": "a1", "channel": "web", "occurred_at": _now(-60)}
    r = client.post("/api/v1/events", json={**base, "type": "Order Completed"})
    assert r.status_code == 201 and r.json()["type"] == "Order Completed"
    assert client.post("/api/v1/events", json={**base, "type": "注文 完了 " + "x" * 190}).status_code == 201
    assert client.post("/api/v1/events", json={**base, "type": "x" * 201}).json()["error"]["field"] == "type"


def test_long_message_ids_are_kept_once(tracker, db) -> None:  # noqa: ANN001
    call = {"userId": "u1", "event": "Long", "messageId": "m" * 190}
    assert tracker.post("/v1/track", json=call).json()["accepted"] == 1
    assert tracker.post("/v1/track", json=call).json()["duplicates"] == 1
    other = {**call, "messageId": "m" * 189 + "n"}
    assert tracker.post("/v1/track", json=other).json()["accepted"] == 1
    assert len(_events(db)) == 2


def test_an_anonymous_id_of_200_characters_is_stored_whole(tracker, db) -> None:  # noqa: ANN001
    # The longest id the API accepts (PostgreSQL's column once held 128 and answered 500).
    long_id = "a" * 199 + "z"
    assert tracker.post("/v1/page", json={"anonymousId": long_id, "name": "Home"}).json()["accepted"] == 1
    assert [e.anonymous_id for e in _events(db)] == [long_id]


def test_a_write_key_is_remembered_for_seconds_and_forgotten_when_revoked(db) -> None:  # noqa: ANN001
    with new_session(db) as s:
        source, key = sources.create_source(s, actor=ADMIN, name="cached site")
        s.commit()
        assert sources.authenticate(s, key).name == "cached site"
        s.execute(update(Source).where(Source.id == source.id).values(name="renamed"))
        s.commit()
        # Within KEY_CACHE_SECONDS (5 s) the source is not read again for every batch.
        assert sources.authenticate(s, key).name == "cached site"
        sources.revoke_source(s, actor=ADMIN, ref=source.id)
        s.commit()
        with pytest.raises(sources.WrongWriteKey, match="revoked"):
            sources.authenticate(s, key)
