"""Segment rules over custom fields (``attributes.<key>``), compared as the field's type, on both backends."""

from __future__ import annotations


def _setup(client) -> dict[str, int]:  # noqa: ANN001
    for body in (
        {"entity": "customer", "key": "visits", "type": "number", "label": "来店回数"},
        {"entity": "customer", "key": "since", "type": "date", "label": "初回来店日"},
        {"entity": "customer", "key": "hobbies", "type": "multi_choice", "label": "趣味", "choices": ["ski", "tea"]},
    ):
        assert client.post("/api/v1/custom-fields", json=body).status_code == 201
    ids = {}
    for email, attributes in (
        ("nine@example.jp", {"visits": 9, "since": "2024-05-01", "hobbies": ["tea"]}),
        ("ten@example.jp", {"visits": 10, "since": "2025-02-01", "hobbies": ["ski"]}),
        ("many@example.jp", {"visits": 120, "since": "2025-08-01"}),
    ):
        made = client.post("/api/v1/customers", json={"email": email, "attributes": attributes})
        assert made.status_code == 201, made.text
        ids[email] = made.json()["id"]
    return ids


def test_a_segment_on_a_custom_number_and_date(client):
    ids = _setup(client)
    rule = {
        "all": [
            {"attribute": "attributes.visits", "op": "gte", "value": 10},
            {"attribute": "attributes.since", "op": "between", "value": ["2025-01-01", "2025-12-31"]},
        ]
    }
    made = client.post("/api/v1/segments", json={"name": "常連", "rule": rule})
    assert made.status_code == 201, made.text
    members = client.get(f"/api/v1/segments/{made.json()['id']}/members").json()["items"]
    # As numbers: 120 >= 10 although "120" < "9" as text.
    assert sorted(m["id"] for m in members) == sorted([ids["ten@example.jp"], ids["many@example.jp"]])

    preview = client.post(
        "/api/v1/segments/preview", json={"rule": {"attribute": "attributes.hobbies", "op": "in", "value": ["tea"]}}
    )
    assert preview.status_code == 200 and [m["id"] for m in preview.json()["sample"]] == [ids["nine@example.jp"]]
    empty = client.post(
        "/api/v1/segments/preview", json={"rule": {"attribute": "attributes.hobbies", "op": "is_empty"}}
    )
    assert [m["id"] for m in empty.json()["sample"]] == [ids["many@example.jp"]]


def test_rules_on_unknown_or_mistyped_custom_fields_are_refused(client):
    _setup(client)
    cases = [
        ({"attribute": "attributes.nothing", "op": "eq", "value": "x"}, "no custom field 'nothing'"),
        ({"attribute": "attributes.visits", "op": "gte", "value": "many"}, "'many' is not a number"),
        ({"attribute": "attributes.visits", "op": "contains", "value": "1"}, "'contains' does not apply"),
        ({"attribute": "attributes.since", "op": "gt", "value": "yesterday-ish"}, "is not a date"),
    ]
    for rule, words in cases:
        response = client.post("/api/v1/segments", json={"name": "x", "rule": rule})
        assert response.status_code == 422, (rule, response.text)
        assert words in response.json()["error"]["message"], (rule, response.text)
    assert client.get("/api/v1/segments").json() == []
