"""The segments API and CLI over real HTTP and the real command."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.conftest import make_token

TOKYO = {"attribute": "prefecture", "op": "eq", "value": "東京都"}


def test_preview_create_members_history_and_errors(client, world):
    preview = client.post("/api/v1/segments/preview", json={"rule": TOKYO})
    assert preview.status_code == 200
    assert preview.json()["count"] == 2
    assert {c["id"] for c in preview.json()["sample"]} == {world["aki"], world["chie"]}

    bad = client.post("/api/v1/segments/preview", json={"rule": {"all": [TOKYO, {"event": "x", "within_days": 0}]}})
    assert bad.status_code == 422
    assert "all[1].event.within_days: must be a positive integer" in bad.text

    made = client.post("/api/v1/segments", json={"name": "東京", "rule": TOKYO})
    assert made.status_code == 201, made.text
    sid = made.json()["id"]
    assert made.json()["member_count"] == 2
    members = client.get(f"/api/v1/segments/{sid}/members", params={"limit": 1}).json()
    assert [m["id"] for m in members["items"]] == [world["aki"]] and members["next_after"] == world["aki"]
    history = client.get(f"/api/v1/segments/{sid}/history").json()
    assert {h["customer_id"] for h in history} == {world["aki"], world["chie"]}
    assert client.post(f"/api/v1/segments/{sid}/refresh", params={"full": True}).json()["mode"] == "full"

    static = client.post("/api/v1/segments", json={"name": "list", "kind": "static"}).json()
    built = client.post(f"/api/v1/segments/{static['id']}/members", json={"csv": "aki@example.com\nzzz@example.com"})
    assert built.json()["member_count"] == 1 and built.json()["unmatched"] == ["zzz@example.com"]
    assert client.post("/api/v1/segments", json={"name": "東京", "rule": TOKYO}).status_code == 409
    assert client.delete(f"/api/v1/segments/{sid}").status_code == 204
    assert client.get(f"/api/v1/segments/{sid}").status_code == 404


def test_a_viewer_may_preview_but_not_create(client, world):
    token = make_token(client.app.state.engine, "viewer@example.com", "viewer")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/segments/preview", json={"rule": TOKYO}, headers=headers).status_code == 200
    assert client.post("/api/v1/segments", json={"name": "x", "rule": TOKYO}, headers=headers).status_code == 403


def test_cli_create_refresh_members_show_delete(db, world, tmp_path, monkeypatch):
    from kizuna.cli import app
    from kizuna.config import get_settings

    monkeypatch.setenv("KIZUNA_DATABASE_URL", db.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    from kizuna.db import get_engine

    get_engine.cache_clear()
    try:
        rule = tmp_path / "rule.json"
        rule.write_text(json.dumps({"all": [TOKYO, {"tag": "VIP"}]}), encoding="utf-8")
        runner = CliRunner()
        made = runner.invoke(app, ["segments", "create", "VIP東京", "--rule", str(rule)])
        assert made.exit_code == 0, made.output
        assert "1 members" in made.output
        listed = json.loads(runner.invoke(app, ["segments", "list", "--format", "json"]).output)
        sid = listed[0]["id"]
        assert listed[0]["member_count"] == 1
        members = json.loads(runner.invoke(app, ["segments", "members", str(sid), "--format", "json"]).output)
        assert [m["id"] for m in members] == [world["aki"]]
        assert "incremental" in runner.invoke(app, ["segments", "refresh", str(sid)]).output
        bad = runner.invoke(app, ["segments", "create", "bad", "--rule-json", '{"all": [{"tag": 5}]}'])
        assert bad.exit_code == 2 and "all[0].tag: must be text" in bad.output
        assert json.loads(runner.invoke(app, ["segments", "show", str(sid)]).output)["rule"]["all"][1] == {"tag": "VIP"}
        assert runner.invoke(app, ["segments", "delete", str(sid)]).exit_code == 0
    finally:
        # Settings and engine are cached per process: forget the ones this test pointed at its database, after
        # the environment is back, so later tests do not inherit them.
        monkeypatch.undo()
        get_settings.cache_clear()
        get_engine.cache_clear()
