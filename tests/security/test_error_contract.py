"""The error contract under probing: 413 for chunked bodies, HTML for the UI, 412/428 for deletes, OpenAPI, Allow."""

from __future__ import annotations

import csv
import io

import httpx

from kizuna.db import transaction
from tests import factories
from tests.web.conftest import csrf_of


def test_chunked_body_over_the_limit_is_413(app, live_server, client):
    token = client.headers["Authorization"]
    limit = 5_000_000

    def body():  # a generator: httpx sends it chunked, with no Content-Length
        chunk = b"x" * 1_000_000
        for _ in range(limit // len(chunk) + 2):
            yield chunk

    r = httpx.post(
        f"{live_server}/api/v1/customers",
        content=body(),
        headers={"Authorization": token, "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "too_large"


def test_ui_errors_are_html_never_json(ui_client):
    c = ui_client("admin")
    for method, path, status in (
        ("GET", "/customers/not-a-number", 404),
        ("GET", "/no-such-page", 404),
        ("GET", "/customers/export.csv", 405),
        ("PUT", "/customers", 405),
    ):
        r = c.request(method, path)
        assert r.status_code == status, (path, r.text[:200])
        assert r.headers["content-type"].startswith("text/html"), path
        assert r.headers["x-frame-options"] == "DENY"
    api = c.get("/api/v1/nothing-here")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


def test_delete_needs_if_match_and_a_stale_one_is_412(client):
    def make(path: str, body: dict) -> tuple[str, int]:
        r = client.post(path, json=body)
        assert r.status_code == 201, r.text
        return f"{path}/{r.json()['id']}", r.json()["id"]

    customer, cid = make("/api/v1/customers", {"family_name": "x"})
    company, _ = make("/api/v1/companies", {"name": "株式会社テスト"})
    product, _ = make("/api/v1/products", {"sku": "S-1", "name": "茶", "price": "100"})
    order, _ = make(
        "/api/v1/orders",
        {"customer_id": cid, "ordered_at": "2024-01-01T00:00:00Z", "lines": [{"sku": "S-1", "unit_price": "100"}]},
    )
    event, _ = make(
        "/api/v1/events",
        {"customer_id": cid, "type": "visit", "channel": "store", "occurred_at": "2024-01-01T00:00:00Z"},
    )
    for path in (event, order, product, company, customer):
        missing = client.delete(path)
        assert missing.status_code == 428, path
        assert missing.json()["error"]["code"] == "precondition_required"
        assert client.delete(path, headers={"If-Match": 'W/"7"'}).status_code == 412, path
        etag = client.get(path).headers["ETag"]
        assert client.delete(path, headers={"If-Match": etag}).status_code == 204, path
        assert client.get(path).status_code == 404


def test_stale_if_match_is_412_even_when_the_race_is_lost_at_write_time(client, db):
    """The version check passes, then another writer commits first: still 412, because If-Match was sent."""
    from sqlalchemy import event as sa_event

    from kizuna.customers.models import Customer

    cid = client.post("/api/v1/customers", json={"family_name": "x"}).json()["id"]
    raced: list[bool] = []

    def racer(mapper, connection, target):  # noqa: ANN001
        if not raced:  # another writer commits first, between the version check and the UPDATE
            raced.append(True)
            with db.begin() as conn:
                conn.execute(Customer.__table__.update().where(Customer.__table__.c.id == cid).values(version=2))

    sa_event.listen(Customer, "before_update", racer)
    try:
        r = client.patch(f"/api/v1/customers/{cid}", json={"city": "A"}, headers={"If-Match": 'W/"1"'})
    finally:
        sa_event.remove(Customer, "before_update", racer)
    assert r.status_code == 412, r.text


def test_openapi_lists_the_error_answers_of_each_operation(client):
    doc = client.get("/openapi.json").json()
    assert "Error" in doc["components"]["schemas"]
    delete = doc["paths"]["/api/v1/customers/{customer_id}"]["delete"]["responses"]
    assert {"401", "403", "404", "412", "428"} <= set(delete)
    patch = doc["paths"]["/api/v1/customers/{customer_id}"]["patch"]["responses"]
    assert {"401", "403", "404", "409", "412", "413", "422", "428"} <= set(patch)
    create = doc["paths"]["/api/v1/customers"]["post"]["responses"]
    assert {"401", "403", "409", "413", "422"} <= set(create)
    assert create["422"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Error"
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert "401" in operation["responses"], (method, path)


def test_405_lists_every_method_of_the_path(client):
    cid = client.post("/api/v1/customers", json={"family_name": "x"}).json()["id"]
    r = client.put(f"/api/v1/customers/{cid}", json={})
    assert r.status_code == 405
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "PATCH", "DELETE"}
    r = client.put("/api/v1/customers", json={})
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_tags_cannot_start_a_formula_in_a_csv_split_on_semicolons(client):
    client.post("/api/v1/customers", json={"family_name": "x", "tags": ["a", '=HYPERLINK("http://x")', "-1+1"]})
    text = client.get("/api/v1/exports/customers.csv").content.decode("utf-8-sig")
    row = next(csv.DictReader(io.StringIO(text)))
    for piece in row["tags"].split(";"):
        assert not piece.startswith(("=", "+", "-", "@")), row["tags"]
    assert "'=HYPERLINK" in row["tags"]


def test_ui_export_is_a_post_with_csrf(ui_client, db):
    with transaction(db) as s:
        factories.customer(s, email="vip@example.com", tags=["vip"])
    c = ui_client("admin")
    assert c.get("/customers/export.csv?tag=vip").status_code == 405
    assert c.post("/customers/export.csv", data={"tag": "vip"}).status_code == 403
    token = csrf_of(c.get("/customers").text)
    r = c.post("/customers/export.csv", data={"tag": "vip", "csrf_token": token})
    assert r.status_code == 200 and "vip@example.com" in r.content.decode("utf-8-sig")


def test_tags_are_limited_per_customer_and_per_request(client):
    many = [f"t{i}" for i in range(51)]
    r = client.post("/api/v1/customers", json={"family_name": "x", "tags": many})
    assert r.status_code == 422 and r.json()["error"]["field"] == "tags"
    assert client.post("/api/v1/customers", json={"family_name": "x", "tags": many[:50]}).status_code == 201


def test_the_tag_filter_is_a_search_not_a_list_of_every_tag(ui_client, client):
    for i in range(60):
        client.post("/api/v1/customers", json={"family_name": "x", "tags": [f"tag-{i:03}"]})
    c = ui_client("viewer")
    page = c.get("/customers").text
    assert 'name="tag"' in page and '<select name="tag"' not in page
    assert page.count('<option value="tag-') <= 20
    typed = c.get("/customers?tag=tag-05").text
    assert "tag-059" in typed
