"""Saved views through the API (/api/v1/views): the caller's own, checked when saved."""

from __future__ import annotations


def test_a_saved_view_is_created_listed_and_deleted_by_its_owner(client):
    body = {"name": "東京のVIP", "params": {"tag": "VIP", "prefecture": "東京都", "mine": "1", "sort": "full_name"}}
    r = client.post("/api/v1/views", json={**body, "columns": ["owner", "email"]})
    assert r.status_code == 201, r.text
    view = r.json()
    # Columns are kept in the list's display order.
    assert view["columns"] == ["email", "owner"] and view["params"]["mine"] == "1"
    assert r.headers["Location"] == f"/api/v1/views/{view['id']}"
    assert [v["name"] for v in client.get("/api/v1/views").json()] == ["東京のVIP"]
    again = client.post("/api/v1/views", json=body)
    assert again.status_code == 409
    assert client.delete(f"/api/v1/views/{view['id']}").status_code == 204
    assert client.get("/api/v1/views").json() == []


def test_a_view_without_columns_gets_the_default_columns(client):
    view = client.post("/api/v1/views", json={"name": "all"}).json()
    assert view["columns"] == ["email", "phone", "company", "tags", "created_at"]


def test_views_are_private_to_their_user(client, client_as):
    view = client.post("/api/v1/views", json={"name": "mine", "params": {"mine": "1"}}).json()
    other = client_as("viewer")
    assert other.get("/api/v1/views").json() == []
    assert other.get(f"/api/v1/views/{view['id']}").status_code == 404
    assert other.delete(f"/api/v1/views/{view['id']}").status_code == 404
    assert client.get(f"/api/v1/views/{view['id']}").status_code == 200


def test_a_view_with_a_bad_filter_sort_or_column_is_refused(client):
    for body in (
        {"name": "x", "params": {"nope": "1"}},
        {"name": "x", "params": {"email_consent": "maybe"}},
        {"name": "x", "params": {"sort": "password"}},
        {"name": "x", "columns": ["password_hash"]},
        {"name": "   "},
    ):
        r = client.post("/api/v1/views", json=body)
        assert r.status_code == 422, (body, r.text)
    assert client.get("/api/v1/views").json() == []


def test_one_view_is_the_default_at_a_time(client):
    first = client.post("/api/v1/views", json={"name": "a"}).json()
    second = client.post("/api/v1/views", json={"name": "b"}).json()
    assert client.put(f"/api/v1/views/{first['id']}/default").json()["is_default"] is True
    assert client.put(f"/api/v1/views/{second['id']}/default").json()["is_default"] is True
    assert {v["name"]: v["is_default"] for v in client.get("/api/v1/views").json()} == {"a": False, "b": True}
    assert client.delete(f"/api/v1/views/{second['id']}/default").json()["is_default"] is False
    assert not any(v["is_default"] for v in client.get("/api/v1/views").json())
