"""Teams through the API (managers make them, reps cannot) and ``kizuna deals list|move`` as a real process."""

from __future__ import annotations

import json
import subprocess

from sqlalchemy import select

from kizuna.auth.models import AuditEntry, User
from kizuna.db import transaction
from kizuna.sales import deals, pipelines
from kizuna.sales.models import Deal
from kizuna.sales.schemas import DealCreate
from tests import factories
from tests.cli import kizuna as run_kizuna


def test_managers_make_teams_and_reps_cannot(client_as, db):
    manager = client_as("manager")
    rep = client_as("sales")
    with transaction(db) as s:
        ids = sorted(s.scalars(select(User.id)))
    r = manager.post("/api/v1/teams", json={"name": "西日本営業", "member_ids": ids})
    assert r.status_code == 201, r.text
    team = r.json()
    assert team["member_ids"] == ids
    assert rep.post("/api/v1/teams", json={"name": "勝手なチーム"}).status_code == 403
    assert manager.post("/api/v1/teams", json={"name": "西日本営業"}).status_code == 409
    r = manager.put(f"/api/v1/teams/{team['id']}/members", json={"member_ids": ids[:1]})
    assert r.status_code == 200 and r.json()["member_ids"] == ids[:1]
    assert manager.put(f"/api/v1/teams/{team['id']}/members", json={"member_ids": [999]}).status_code == 422
    assert [t["member_ids"] for t in rep.get("/api/v1/teams").json()] == [ids[:1]]
    with transaction(db) as s:
        assert list(s.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "team"))) == [
            "team.create", "team.update",
        ]  # fmt: skip


def _kizuna(tmp_path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kizuna("deals", *args, KIZUNA_HOME=str(tmp_path), KIZUNA_DATABASE_URL=url)


def test_cli_lists_and_moves_deals(db, tmp_path):
    with transaction(db) as s:
        customer = factories.customer(s)
        stages = pipelines.stages_of(s, pipelines.default_pipeline(s).id)
        deal = deals.create_deal(
            s, actor=factories.SYSTEM, data=DealCreate(name="CLI案件", customer_id=customer.id, amount=9)
        )
        s.flush()
        deal_id = deal.id
    url = db.url.render_as_string(hide_password=False)
    out = _kizuna(tmp_path, url, "list", "amount__gte=5", "--json")
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["name"] for line in out.stdout.splitlines()] == ["CLI案件"]
    out = _kizuna(tmp_path, url, "move", str(deal_id), str(stages[5].id))
    assert out.returncode == 2 and "lost_reason" in out.stdout + out.stderr
    out = _kizuna(tmp_path, url, "move", str(deal_id), str(stages[5].id), "--lost-reason", "予算なし")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["stage_id"] == stages[5].id
    with transaction(db) as s:
        assert s.get(Deal, deal_id).lost_reason == "予算なし"
