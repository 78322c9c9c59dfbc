"""API tokens are cached per process for a few seconds; revocation and role changes still take effect."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import update


def test_deactivating_a_user_stops_their_token_at_once(client, client_as):
    viewer = client_as("viewer")
    assert viewer.get("/api/v1/customers").status_code == 200
    user_id = viewer.get("/api/v1/me").json()["id"]
    r = client.patch(f"/api/v1/users/{user_id}", json={"role": "viewer", "is_active": False})
    assert r.status_code == 200, r.text
    assert viewer.get("/api/v1/customers").status_code == 401


def test_a_new_role_applies_at_once(client, client_as):
    sales = client_as("sales")
    cid = client.post("/api/v1/customers", json={"family_name": "x"}).json()["id"]
    assert sales.get(f"/api/v1/customers/{cid}").status_code == 200
    assert sales.get("/api/v1/exports/customers.csv").status_code == 403
    user_id = sales.get("/api/v1/me").json()["id"]
    assert client.patch(f"/api/v1/users/{user_id}", json={"role": "manager"}).status_code == 200
    assert sales.get("/api/v1/exports/customers.csv").status_code == 200


def test_a_token_revoked_elsewhere_stops_within_the_cache_time(app, client, monkeypatch):
    from kizuna.auth import service as auth
    from kizuna.auth.models import ApiToken
    from kizuna.db import transaction

    created = client.post("/api/v1/tokens", json={"name": "other"}).json()
    with TestClient(app, headers={"Authorization": f"Bearer {created['token']}"}) as other:
        assert other.get("/api/v1/customers/1/timeline").status_code == 404  # authenticated, no such customer
        # Another process revokes it: straight in the database, so this process's cache is not told.
        with transaction(app.state.engine) as s:
            s.execute(update(ApiToken).where(ApiToken.id == created["id"]).values(revoked_at=auth.utcnow()))
        assert other.get("/api/v1/customers/1").status_code == 404  # still cached, for at most a few seconds
        now = auth.time.monotonic()
        monkeypatch.setattr(auth.time, "monotonic", lambda: now + auth.TOKEN_CACHE_SECONDS + 0.1)
        assert other.get("/api/v1/customers/1").status_code == 401
        assert other.get("/api/v1/customers/1/timeline").status_code == 401
