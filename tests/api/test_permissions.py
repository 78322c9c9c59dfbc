"""Every role gets what the permission table says, and nothing more."""

from __future__ import annotations

import pytest

from kizuna.auth.permissions import PERMISSIONS, ROLES


@pytest.mark.parametrize("role", ROLES)
def test_role_can_write_customers_only_if_granted(client_as, role):
    c = client_as(role)
    assert c.get("/api/v1/customers").status_code == 200
    r = c.post("/api/v1/customers", json={"family_name": "x"})
    expected = 201 if "customers:write" in PERMISSIONS[role] else 403
    assert r.status_code == expected, r.text
    if expected == 403:
        assert r.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("role", ROLES)
def test_only_admin_manages_users_and_reads_the_audit_log(client_as, role):
    c = client_as(role)
    allowed = role == "admin"
    assert (c.get("/api/v1/audit").status_code == 200) is allowed
    assert (c.get("/api/v1/users").status_code == 200) is allowed
    r = c.post(
        "/api/v1/users", json={"email": f"new-{role}@example.com", "role": "viewer", "password": "long-enough-pw"}
    )
    assert (r.status_code == 201) is allowed


def test_viewer_cannot_export_or_delete(client_as, client):
    cid = client.post("/api/v1/customers", json={"family_name": "x"}).json()["id"]
    viewer = client_as("viewer")
    assert viewer.get("/api/v1/exports/customers.csv").status_code == 403
    assert viewer.delete(f"/api/v1/customers/{cid}", headers={"If-Match": "*"}).status_code == 403
    assert viewer.patch(f"/api/v1/customers/{cid}", json={"city": "x", "version": 1}).status_code == 403


def test_writes_and_exports_are_audited(client):
    cid = client.post("/api/v1/customers", json={"family_name": "監査"}).json()["id"]
    client.patch(f"/api/v1/customers/{cid}", json={"city": "京都市", "version": 1})
    client.get("/api/v1/exports/customers.csv")
    entries = client.get("/api/v1/audit").json()["items"]
    actions = [e["action"] for e in entries]
    assert actions[:3] == ["export.customers", "customer.update", "customer.create"]
    assert entries[1]["details"]["city"] == [None, "京都市"]
    assert entries[0]["actor"] == "api-admin@example.com"


def test_token_created_over_api_is_shown_once_and_works(client, app):
    from fastapi.testclient import TestClient

    r = client.post("/api/v1/tokens", json={"name": "ci"})
    assert r.status_code == 201
    secret = r.json()["token"]
    assert secret.startswith("kz_")
    assert all("token" not in t for t in client.get("/api/v1/tokens").json())
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as other:
        assert other.get("/api/v1/me").json()["email"] == "api-admin@example.com"
        client.delete(f"/api/v1/tokens/{r.json()['id']}")
        assert other.get("/api/v1/me").status_code == 401


def test_the_last_active_admin_cannot_be_demoted_or_disabled(client):
    me = client.get("/api/v1/me").json()
    r = client.patch(f"/api/v1/users/{me['id']}", json={"role": "viewer"})
    assert r.status_code == 422 and "last active admin" in r.json()["error"]["message"]
    assert client.patch(f"/api/v1/users/{me['id']}", json={"role": "admin", "is_active": False}).status_code == 422
    other = client.post("/api/v1/users", json={"email": "second-admin@example.com", "role": "admin"}).json()
    assert client.patch(f"/api/v1/users/{me['id']}", json={"role": "manager"}).status_code == 200
    assert other["role"] == "admin"


def test_non_admin_cannot_probe_accounts_through_tokens(client_as, client):
    viewer = client_as("viewer")
    missing = viewer.post("/api/v1/tokens", json={"name": "x", "email": "nobody@example.com"})
    existing = viewer.post("/api/v1/tokens", json={"name": "x", "email": "api-admin@example.com"})
    assert missing.status_code == existing.status_code == 403
    admin_token = client.post("/api/v1/tokens", json={"name": "mine"}).json()["id"]
    assert viewer.delete(f"/api/v1/tokens/{admin_token}").status_code == 404
    assert viewer.delete("/api/v1/tokens/999999").status_code == 404
