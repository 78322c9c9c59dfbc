"""Custom fields through the real API on both backends: definitions CRUD, typed values on customers, companies
and deals (a wrong value names the field and changes nothing), typed list filters and the OpenAPI document."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kizuna.auth.models import AuditEntry, User
from kizuna.customers.models import Customer
from kizuna.db import transaction
from kizuna.errors import ValidationError


def _field(client, **body) -> dict:  # noqa: ANN001
    response = client.post("/api/v1/custom-fields", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_admin_creates_reads_changes_and_deletes_a_field(client, db):
    made = _field(
        client, entity="customer", key="shoe_size", type="number", label="靴のサイズ", min_value=20, max_value=32
    )
    assert made["key"] == "shoe_size" and made["type"] == "number" and made["version"] == 1
    assert client.get(f"/api/v1/custom-fields/{made['id']}").json()["label"] == "靴のサイズ"
    assert [f["key"] for f in client.get("/api/v1/custom-fields?entity=customer").json()] == ["shoe_size"]
    assert client.get("/api/v1/custom-fields?entity=deal").json() == []

    changed = client.patch(f"/api/v1/custom-fields/{made['id']}", json={"label": "靴", "version": 1})
    assert changed.status_code == 200 and changed.json()["label"] == "靴" and changed.json()["version"] == 2
    # The key and type are fixed once created: stored values keep their meaning.
    fixed = client.patch(f"/api/v1/custom-fields/{made['id']}", json={"type": "text", "version": 2})
    assert fixed.status_code == 422

    taken = client.post(
        "/api/v1/custom-fields", json={"entity": "customer", "key": "shoe_size", "type": "text", "label": "x"}
    )
    assert taken.status_code == 409 and "attributes.shoe_size" in taken.json()["error"]["message"]

    customer = client.post("/api/v1/customers", json={"email": "kept@example.jp", "attributes": {"shoe_size": 25}})
    assert customer.status_code == 201, customer.text
    assert client.delete(f"/api/v1/custom-fields/{made['id']}").status_code == 428
    gone = client.delete(f"/api/v1/custom-fields/{made['id']}", headers={"If-Match": '"2"'})
    assert gone.status_code == 204
    assert client.get(f"/api/v1/custom-fields/{made['id']}").status_code == 404
    # Deleting the definition keeps the values; they are no longer checked.
    again = client.get(f"/api/v1/customers/{customer.json()['id']}").json()
    assert again["attributes"] == {"shoe_size": 25}
    with transaction(db) as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "custom_field")).all()
    assert sorted(actions) == ["custom_field.create", "custom_field.delete", "custom_field.update"]


def test_bad_definitions_are_refused_with_the_rule_named(client):
    cases = [
        ({"entity": "customer", "key": "Bad Key", "type": "text", "label": "x"}, "key"),
        ({"entity": "customer", "key": "a__b", "type": "text", "label": "x"}, "two underscores"),
        ({"entity": "order", "key": "x", "type": "text", "label": "x"}, "entity"),
        ({"entity": "customer", "key": "x", "type": "choice", "label": "x"}, "at least one choice"),
        (
            {"entity": "customer", "key": "x", "type": "number", "label": "x", "min_value": 5, "max_value": 1},
            "min_value",
        ),
        ({"entity": "customer", "key": "x", "type": "text", "label": "x", "choices": ["a"]}, "choices apply"),
    ]
    for body, words in cases:
        response = client.post("/api/v1/custom-fields", json=body)
        assert response.status_code == 422, body
        assert words in response.text, (body, response.text)
    assert client.get("/api/v1/custom-fields").json() == []


def test_only_admins_manage_fields(client, client_as):
    manager = client_as("manager")
    refused = manager.post("/api/v1/custom-fields", json={"entity": "deal", "key": "x", "type": "text", "label": "x"})
    assert refused.status_code == 403
    assert manager.get("/api/v1/custom-fields").status_code == 200


def test_wrong_values_name_the_field_and_change_nothing(client, db):
    _field(client, entity="customer", key="visits", type="number", label="来店回数", min_value=0)
    _field(client, entity="customer", key="since", type="date", label="初回来店日")
    _field(client, entity="customer", key="plan", type="choice", label="プラン", choices=["gold", "silver"])
    _field(client, entity="customer", key="hobbies", type="multi_choice", label="趣味", choices=["ski", "golf", "tea"])
    _field(client, entity="customer", key="site", type="url", label="サイト")
    _field(client, entity="customer", key="rep", type="user", label="担当", required=False)
    _field(client, entity="customer", key="memo", type="text", label="メモ", max_length=5)
    with transaction(db) as s:
        user_id = s.scalar(select(User.id))

    wrong = [
        ({"visits": "abc"}, "attributes.visits", "'abc' is not a number"),
        ({"visits": -1}, "attributes.visits", "less than the minimum 0"),
        ({"since": "2025-13-01"}, "attributes.since", "is not a date"),
        ({"plan": "bronze"}, "attributes.plan", "is not one of gold, silver"),
        ({"hobbies": ["ski", "surf"]}, "attributes.hobbies", "'surf' is not one of"),
        ({"site": "javascript:alert(1)"}, "attributes.site", "is not a web address"),
        ({"rep": 999999}, "attributes.rep", "there is no user 999999"),
        ({"memo": "とても長いメモ"}, "attributes.memo", "longer than 5 characters"),
    ]
    for attributes, field, words in wrong:
        response = client.post("/api/v1/customers", json={"email": "x@example.jp", "attributes": attributes})
        assert response.status_code == 422, attributes
        error = response.json()["error"]
        assert error["field"] == field and words in error["message"], (attributes, error)
    with transaction(db) as s:
        assert s.scalar(select(Customer.id).where(Customer.email == "x@example.jp")) is None

    good = {
        "visits": "12",
        "since": "2025-04-01",
        "plan": "gold",
        "hobbies": "tea, ski",
        "site": "https://ex.jp/a",
        "rep": user_id,
        "memo": "短い",
        "free": "kept as given",
    }
    made = client.post("/api/v1/customers", json={"email": "ok@example.jp", "attributes": good})
    assert made.status_code == 201, made.text
    # Stored typed: a JSON number, an ISO date, the choices in the definition's order.
    assert made.json()["attributes"] == {
        "visits": 12,
        "since": "2025-04-01",
        "plan": "gold",
        "hobbies": ["ski", "tea"],
        "site": "https://ex.jp/a",
        "rep": user_id,
        "memo": "短い",
        "free": "kept as given",
    }
    before = client.get(f"/api/v1/customers/{made.json()['id']}").json()
    bad = client.patch(
        f"/api/v1/customers/{before['id']}", json={"attributes": {"visits": "many"}, "version": before["version"]}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "attributes.visits"
    assert client.get(f"/api/v1/customers/{before['id']}").json() == before


def test_required_field_and_company_and_deal_values(client):
    _field(client, entity="company", key="employees", type="number", label="従業員数", required=True)
    missing = client.post("/api/v1/companies", json={"name": "株式会社テスト"})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "attributes.employees"
    assert "is required" in missing.json()["error"]["message"]
    company = client.post("/api/v1/companies", json={"name": "株式会社テスト", "attributes": {"employees": 120}})
    assert company.status_code == 201, company.text

    _field(client, entity="deal", key="renewal", type="date", label="更新日")
    bad = client.post(
        "/api/v1/deals", json={"name": "更新", "company_id": company.json()["id"], "attributes": {"renewal": "来月"}}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "attributes.renewal"
    deal = client.post(
        "/api/v1/deals",
        json={"name": "更新", "company_id": company.json()["id"], "attributes": {"renewal": "2026-04-01"}},
    )
    assert deal.status_code == 201, deal.text
    assert deal.json()["attributes"] == {"renewal": "2026-04-01"}


def test_typed_filters_compare_numbers_and_dates(client):
    _field(client, entity="customer", key="visits", type="number", label="来店回数")
    _field(client, entity="customer", key="since", type="date", label="初回")
    _field(client, entity="customer", key="hobbies", type="multi_choice", label="趣味", choices=["ski", "golf"])
    rows = [
        ("a@example.jp", 9, "2024-12-31", ["ski"]),
        ("b@example.jp", 10, "2025-01-01", ["golf"]),
        ("c@example.jp", 100, "2025-06-30", ["ski", "golf"]),
        ("d@example.jp", None, None, None),
    ]
    for email, visits, since, hobbies in rows:
        attributes = {"visits": visits, "since": since, "hobbies": hobbies}
        assert client.post("/api/v1/customers", json={"email": email, "attributes": attributes}).status_code == 201
    # A value typed before the field existed (here written as text) matches no number comparison.
    # (Compared as numbers, not as text: "100" < "9" as text.)

    def emails(query: str) -> list[str]:
        response = client.get(f"/api/v1/customers?{query}&sort=id")
        assert response.status_code == 200, response.text
        return [c["email"] for c in response.json()["items"]]

    assert emails("attributes.visits__gte=10") == ["b@example.jp", "c@example.jp"]
    assert emails("attributes.visits__lt=10") == ["a@example.jp"]
    assert emails("attributes.since__gte=2025-01-01&attributes.since__lte=2025-03-31") == ["b@example.jp"]
    assert emails("attributes.hobbies=ski") == ["a@example.jp", "c@example.jp"]
    assert emails("attributes.hobbies__in=golf") == ["b@example.jp", "c@example.jp"]
    assert emails("attributes.visits__isnull=true") == ["d@example.jp"]
    bad = client.get("/api/v1/customers?attributes.visits__gte=ten")
    assert bad.status_code == 422 and "attributes.visits" in bad.json()["error"]["message"]
    unknown = client.get("/api/v1/customers?attributes.nothing=1")
    assert unknown.status_code == 422 and "no custom field 'nothing'" in unknown.json()["error"]["message"]


def test_deal_filter_on_a_custom_number(client):
    _field(client, entity="deal", key="seats", type="number", label="席数")
    company = client.post("/api/v1/companies", json={"name": "席の会社"}).json()
    for name, seats in (("small", 5), ("big", 50)):
        body = {"name": name, "company_id": company["id"], "attributes": {"seats": seats}}
        assert client.post("/api/v1/deals", json=body).status_code == 201
    found = client.get("/api/v1/deals?attributes.seats__gt=10").json()["items"]
    assert [d["name"] for d in found] == ["big"]


def test_openapi_shows_the_fields_at_once(client):
    before = client.get("/openapi.json").json()["components"]["schemas"]
    assert "shoe_size" not in str(before["CustomerRead"])
    _field(client, entity="customer", key="shoe_size", type="number", label="靴のサイズ")
    _field(client, entity="deal", key="plan", type="choice", label="プラン", choices=["a", "b"])
    schemas = client.get("/openapi.json").json()["components"]["schemas"]

    def attributes(name: str) -> dict:
        found = schemas[name]["properties"]["attributes"]
        return next(b for b in found.get("anyOf", [found]) if b.get("type") == "object")["properties"]

    for name in ("CustomerRead", "CustomerCreate", "CustomerUpdate"):
        assert attributes(name)["shoe_size"] == {"title": "靴のサイズ", "type": "number"}, name
    assert attributes("DealCreate")["plan"]["enum"] == ["a", "b"]
    assert "plan" not in str(schemas["CustomerRead"])


def test_exports_have_a_column_per_field_and_filter_by_it(client):
    import csv
    import io

    import pyarrow.parquet as pq

    _field(client, entity="customer", key="visits", type="number", label="来店回数")
    _field(client, entity="customer", key="hobbies", type="multi_choice", label="趣味", choices=["ski", "tea"])
    for email, attributes in (
        ("a@example.jp", {"visits": 3, "hobbies": ["ski", "tea"]}),
        ("b@example.jp", {"visits": 30}),
    ):
        assert client.post("/api/v1/customers", json={"email": email, "attributes": attributes}).status_code == 201
    response = client.get("/api/v1/exports/customers.csv?sort=id")
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["email"], r["attributes.visits"], r["attributes.hobbies"]) for r in rows] == [
        ("a@example.jp", "3", "ski;tea"),
        ("b@example.jp", "30", ""),
    ]
    filtered = client.get("/api/v1/exports/customers.parquet?attributes.visits__gte=10")
    table = pq.read_table(io.BytesIO(filtered.content))
    assert table.column("email").to_pylist() == ["b@example.jp"]
    assert table.schema.field("attributes.visits").type == "double"
    assert table.column("attributes.visits").to_pylist() == [30.0]


def test_a_batch_attribute_write_stores_custom_fields_typed(client, db):
    from kizuna.customers import batch
    from tests import factories

    _field(client, entity="customer", key="visits", type="number", label="来店回数")
    made = client.post("/api/v1/customers", json={"email": "batch@example.jp"}).json()
    with transaction(db) as s:
        batch.set_attributes(s, actor=factories.SYSTEM, customer_ids=[made["id"]], values={"attributes.visits": "7"})
    assert client.get(f"/api/v1/customers/{made['id']}").json()["attributes"] == {"visits": 7}
    with pytest.raises(ValidationError) as refused, transaction(db) as s:
        batch.set_attributes(s, actor=factories.SYSTEM, customer_ids=[made["id"]], values={"visits": "many"})
    assert refused.value.field == "attributes.visits"
    assert client.get(f"/api/v1/customers/{made['id']}").json()["attributes"] == {"visits": 7}
