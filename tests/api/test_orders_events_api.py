"""Products, orders with line items, events and the 360 timeline through the API."""

from __future__ import annotations


def _setup(client):
    cid = client.post("/api/v1/customers", json={"family_name": "佐藤", "email": "sato@example.jp"}).json()["id"]
    for sku, cat in (("COF-1", "コーヒー"), ("TEA-1", "紅茶")):
        r = client.post(
            "/api/v1/products",
            json={"sku": sku, "name": sku, "category": cat, "taste": "深煎り", "brand": "Kizuna", "price": "1200"},
        )
        assert r.status_code == 201, r.text
    return cid


def test_order_with_line_items_totals_exactly(client):
    cid = _setup(client)
    r = client.post(
        "/api/v1/orders",
        json={
            "customer_id": cid,
            "ordered_at": "2025-03-01T10:00:00+09:00",
            "external_id": "O-1",
            "lines": [{"sku": "COF-1", "quantity": 2, "unit_price": "1200.10"}, {"sku": "TEA-1", "unit_price": "0.20"}],
        },
    )
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["total_amount"] == "2400.40"
    assert order["ordered_at"].startswith("2025-03-01T01:00:00")
    assert [line["sku"] for line in order["lines"]] == ["COF-1", "TEA-1"]
    assert client.get(f"/api/v1/orders?customer_id={cid}").json()["items"][0]["id"] == order["id"]
    unknown = client.post(
        "/api/v1/orders",
        json={"customer_id": cid, "ordered_at": "2025-03-01T10:00:00Z", "lines": [{"sku": "NOPE", "unit_price": "1"}]},
    )
    assert unknown.status_code == 422 and "NOPE" in unknown.json()["error"]["message"]
    no_customer = client.post(
        "/api/v1/orders",
        json={
            "customer_id": 999999,
            "ordered_at": "2025-03-01T10:00:00Z",
            "lines": [{"sku": "COF-1", "unit_price": "1"}],
        },
    )
    assert no_customer.status_code == 422 and no_customer.json()["error"]["field"] == "customer_id"
    patched = client.patch(f"/api/v1/orders/{order['id']}", json={"status": "returned", "version": 1})
    assert patched.status_code == 200 and patched.json()["status"] == "returned"


def test_events_are_idempotent_on_external_id_and_not_editable(client):
    cid = _setup(client)
    body = {
        "customer_id": cid,
        "type": "page_view",
        "channel": "web",
        "occurred_at": "2025-01-01T00:00:00Z",
        "external_id": "evt-1",
        "properties": {"path": "/"},
    }
    first = client.post("/api/v1/events", json=body)
    again = client.post("/api/v1/events", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert client.patch(f"/api/v1/events/{first.json()['id']}", json={"type": "x"}).status_code == 405
    bad = client.post("/api/v1/events", json={**body, "channel": "carrier-pigeon", "external_id": "evt-2"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "channel"


def test_timeline_merges_every_touchpoint_newest_first_and_pages(client):
    cid = _setup(client)
    client.post(
        "/api/v1/events",
        json={"customer_id": cid, "type": "page_view", "channel": "web", "occurred_at": "2025-01-01T00:00:00Z"},
    )
    client.post(
        "/api/v1/orders",
        json={
            "customer_id": cid,
            "ordered_at": "2025-02-01T00:00:00Z",
            "lines": [{"sku": "COF-1", "unit_price": "1200"}],
        },
    )
    client.post(
        "/api/v1/events",
        json={"customer_id": cid, "type": "store_visit", "channel": "store", "occurred_at": "2025-03-01T00:00:00Z"},
    )
    client.post(
        f"/api/v1/customers/{cid}/consents",
        json={"channel": "email", "status": "granted", "method": "web_form", "recorded_at": "2025-04-01T00:00:00Z"},
    )
    client.post(f"/api/v1/customers/{cid}/notes", json={"body": "called about delivery"})
    items = client.get(f"/api/v1/customers/{cid}/timeline").json()["items"]
    assert [i["kind"] for i in items] == ["note", "consent", "event", "order", "event"]
    times = [i["occurred_at"] for i in items]
    assert times == sorted(times, reverse=True)

    first = client.get(f"/api/v1/customers/{cid}/timeline", params={"limit": 2}).json()
    second = client.get(f"/api/v1/customers/{cid}/timeline", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = client.get(f"/api/v1/customers/{cid}/timeline", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    paged = [(i["kind"], i["id"]) for i in first["items"] + second["items"] + third["items"]]
    assert paged == [(i["kind"], i["id"]) for i in items]
    assert third["next_cursor"] is None
    only_orders = client.get(f"/api/v1/customers/{cid}/timeline", params={"kinds": "order"}).json()["items"]
    assert [i["kind"] for i in only_orders] == ["order"]
    assert client.get(f"/api/v1/customers/{cid}/timeline", params={"kinds": "tweets"}).status_code == 422


def test_an_order_known_only_by_its_total_has_no_lines(client):
    cid = _setup(client)
    order = {"customer_id": cid, "ordered_at": "2025-03-01T10:00:00+09:00", "external_id": "POS-1"}
    empty = client.post("/api/v1/orders", json=order)
    assert empty.status_code == 422 and "lines or a total_amount" in empty.json()["error"]["message"]
    r = client.post("/api/v1/orders", json={**order, "total_amount": "3300"})
    assert r.status_code == 201, r.text
    assert (r.json()["total_amount"], r.json()["lines"]) == ("3300", [])
