"""``kizuna sources ...`` as a person runs it: create prints a working write key, list, revoke, purge."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient

from tests.test_cli import _kizuna


def test_sources_create_list_revoke_and_purge(tmp_path) -> None:  # noqa: ANN001
    home = tmp_path / "home"
    url = f"sqlite:///{tmp_path / 'kizuna.db'}"
    created = _kizuna(home, "sources", "create", "--name", "shop site", db_url=url)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("kzw_") and "shop site" in created.stdout

    from kizuna.app import create_app
    from kizuna.db import make_engine

    engine = make_engine(url)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    with TestClient(create_app(engine)) as client:
        r = client.post("/v1/track", json={"anonymousId": "a1", "event": "Product Viewed"}, headers=auth)
        assert r.status_code == 200 and r.json()["accepted"] == 1
    listed = _kizuna(home, "sources", "list", db_url=url)
    assert "shop site" in listed.stdout and "live" in listed.stdout and key[:12] in listed.stdout
    assert key not in listed.stdout
    assert _kizuna(home, "sources", "create", "--name", "shop site", db_url=url).returncode == 2
    assert _kizuna(home, "sources", "revoke", "shop site", db_url=url).returncode == 0
    assert "revoked" in _kizuna(home, "sources", "list", db_url=url).stdout
    purged = _kizuna(home, "sources", "purge-anonymous", db_url=url)
    assert purged.returncode == 0 and "0 anonymous profiles removed" in purged.stdout
    engine.dispose()
