"""Input an attacker would craft: deep JSON, query strings that overflow, cursors with the wrong types."""

from __future__ import annotations

import base64
import json

import pytest

from kizuna.auth import audit
from kizuna.auth.permissions import Actor
from kizuna.db import transaction
from kizuna.events.models import Event
from tests import factories


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def _error(r, status: int = 422) -> dict:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert set(body) >= {"code", "message", "field"}
    return body


def test_json_nested_too_deep_is_refused_at_the_edge(client):
    deep = client.post("/api/v1/customers", json={"family_name": "x", "attributes": _nested(300)})
    assert "deeper than 32" in _error(deep)["message"]
    ok = client.post("/api/v1/customers", json={"family_name": "x", "attributes": _nested(20)})
    assert ok.status_code == 201, ok.text
    cid = ok.json()["id"]
    event = {"customer_id": cid, "type": "page_view", "channel": "web", "occurred_at": "2024-01-01T00:00:00Z"}
    assert client.post("/api/v1/events", json={**event, "properties": _nested(40)}).status_code == 422
    assert client.get("/api/v1/customers", params={"id": cid}).status_code == 200


def test_json_deeper_than_the_parser_goes_is_a_4xx_in_the_error_shape(client):
    body = '{"family_name": "x", "attributes": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    r = client.post("/api/v1/customers", content=body, headers={"Content-Type": "application/json"})
    assert _error(r, 400)["code"] == "bad_request"
    assert client.get("/api/v1/customers").json()["items"] == []


def test_json_too_large_is_refused_naming_the_field(client):
    big = {"k": "x" * 70_000}
    r = client.post("/api/v1/customers", json={"family_name": "x", "attributes": big})
    assert _error(r)["field"] == "attributes"
    assert "at most 65536" in r.json()["error"]["message"]


def test_deep_json_stored_before_the_limit_never_breaks_a_read(client, db):
    """Rows written before the limit existed (or around it) are clipped when read, never a 500."""
    deep = _nested(400)
    with transaction(db) as s:
        customer = factories.customer(s, family_name="深")
        customer.attributes = deep
        s.add(
            Event(
                customer_id=customer.id,
                type="deep",
                channel="web",
                occurred_at=factories.at("2024-01-01"),
                properties=deep,
            )
        )
        audit.record(s, actor=Actor.system("test"), action="x.deep", entity_type="customer", details=deep)
        cid = customer.id
    for path in (
        "/api/v1/customers",
        f"/api/v1/customers/{cid}",
        f"/api/v1/customers/{cid}/timeline",
        "/api/v1/events",
        "/api/v1/audit",
        "/api/v1/exports/customers.csv",
        "/api/v1/exports/customers.parquet",
        "/api/v1/exports/events.csv",
    ):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
    shown = client.get(f"/api/v1/customers/{cid}").json()["attributes"]
    assert "nested too deep" in json.dumps(shown, ensure_ascii=False)


def test_deep_json_stored_never_breaks_the_ui(ui_client, db):
    with transaction(db) as s:
        customer = factories.customer(s, family_name="深")
        customer.attributes = _nested(400)
        audit.record(s, actor=Actor.system("test"), action="x.deep", entity_type="customer", details=_nested(400))
        cid = customer.id
    ui = ui_client("admin")
    for path in ("/customers", f"/customers/{cid}", "/admin/audit"):
        assert ui.get(path).status_code == 200, path


def _cursor(*parts) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/customers",
        "/api/v1/events",
        "/api/v1/audit",
        "/api/v1/exports/customers.csv",
        "/api/v1/exports/orders.parquet",
    ],
)
@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-23:59"])
def test_dates_that_overflow_utc_are_422(client, path, moment):
    field = {"/api/v1/events": "occurred_at", "/api/v1/audit": "at", "/api/v1/exports/orders.parquet": "ordered_at"}
    name = field.get(path, "created_at")
    r = client.get(path, params={f"{name}__gte": moment})
    assert _error(r)["field"] == name


def test_crafted_cursors_are_422(client):
    client.post("/api/v1/customers", json={"family_name": "x"})
    assert _error(client.get("/api/v1/customers", params={"cursor": _cursor("id", "1", True)}))["field"] == "cursor"
    assert client.get("/api/v1/customers", params={"cursor": _cursor("id", "1", 2**70)}).status_code == 422
    date_cursor = _cursor("created_at", "0001-01-01T00:00:00+14:00", 1)
    assert client.get("/api/v1/customers", params={"sort": "created_at", "cursor": date_cursor}).status_code == 422
    events_cursor = _cursor("occurred_at", "9999-12-31T23:59:59-23:59", 1)
    assert client.get("/api/v1/events", params={"cursor": events_cursor}).status_code == 422
    cid = client.get("/api/v1/customers").json()["items"][0]["id"]
    timeline = _cursor("0001-01-01T00:00:00+14:00", "event", True)
    assert client.get(f"/api/v1/customers/{cid}/timeline", params={"cursor": timeline}).status_code == 422


@pytest.mark.parametrize("value", ["sNaN", "NaN", "Infinity", "-inf", "1e400"])
def test_non_finite_decimals_are_422(client, value):
    for path in ("/api/v1/orders", "/api/v1/exports/orders.csv", "/api/v1/products"):
        name = "price" if "products" in path else "total_amount"
        r = client.get(path, params={f"{name}__gte": value})
        assert _error(r)["field"] == name, path


def test_integers_beyond_bigint_are_422(client):
    assert _error(client.get("/api/v1/customers", params={"id__gt": str(2**70)}))["field"] == "id"


def test_body_times_that_overflow_utc_are_422(client):
    cid = client.post("/api/v1/customers", json={"family_name": "x"}).json()["id"]
    event = {"customer_id": cid, "type": "page_view", "channel": "web", "occurred_at": "0001-01-01T00:00:00+14:00"}
    assert _error(client.post("/api/v1/events", json=event))["field"] == "occurred_at"


def test_an_events_import_rejects_deep_json_row_by_row(db, session, tmp_path):
    from sqlalchemy import select

    from kizuna.imports.runner import run_import

    factories.customer(session, external_id="C-1")
    session.commit()
    base = {"customer_id": "C-1", "type": "page_view", "channel": "web"}
    lines = [
        json.dumps({**base, "occurred_at": "2024-03-01", "path": "/a"}),
        json.dumps({**base, "occurred_at": "2024-03-02", "properties": _nested(40)}),
        # Deeper than Python's own JSON parser goes: the line is refused, the import goes on.
        '{"customer_id": "C-1", "type": "x", "channel": "web", "occurred_at": "2024-03-03", "properties": '
        + "[" * 100_000
        + "]" * 100_000
        + "}",
        json.dumps({**base, "occurred_at": "2024-03-04", "path": "/d"}),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = run_import(db, "events", path, actor=Actor.system("test"), mapping={"customer_id": "customer_external_id"})
    assert (report.inserted, report.rejected) == (2, 2)
    stored = session.scalars(select(Event.properties).order_by(Event.occurred_at)).all()
    assert stored == [{"path": "/a"}, {"path": "/d"}]
