"""Pipeline and team set-up: the API (stages added, renamed, reordered; the default pipeline) and the UI pages
for managers (CSRF, errors beside the field, nothing half-saved, audited), refused to reps; in a real Chromium the
pages fit a 390px phone and pass axe-core."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kizuna.auth.models import AuditEntry, User
from kizuna.db import transaction
from kizuna.sales import deals, pipelines, teams
from kizuna.sales.models import Pipeline, Stage
from kizuna.sales.schemas import DealCreate
from tests import factories
from tests.phone import phone_problems
from tests.web.conftest import csrf_of


def _stages(db, pipeline_id: int) -> list[tuple[str, str | None, int, str]]:  # noqa: ANN001
    with transaction(db) as s:
        return [(x.name, x.name_en, x.probability, x.kind) for x in pipelines.stages_of(s, pipeline_id)]


def test_api_adds_renames_and_reorders_stages_and_sets_the_default(db, client_as):
    manager, rep = client_as("manager"), client_as("sales")
    default = manager.get("/api/v1/pipelines").json()[0]
    r = manager.post(
        "/api/v1/pipelines", json={"name": "代理店", "stages": [{"name": "商談"}, {"name": "受注", "kind": "won"}]}
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = manager.post(f"/api/v1/pipelines/{pid}/stages", json={"name": "失注", "name_en": "Lost", "kind": "lost"})
    assert r.status_code == 201 and r.json()["position"] == 2
    lost_id = r.json()["id"]
    first = manager.get(f"/api/v1/pipelines/{pid}").json()["stages"][0]["id"]
    r = manager.patch(f"/api/v1/pipelines/{pid}/stages/{first}", json={"name": "初回商談", "probability": 20})
    assert r.status_code == 200 and r.json()["name"] == "初回商談"
    r = manager.post(f"/api/v1/pipelines/{pid}/stages/{lost_id}/move", json={"position": 0})
    assert r.status_code == 200
    assert [s["name"] for s in r.json()["stages"]] == ["失注", "初回商談", "受注"]
    assert manager.post(f"/api/v1/pipelines/{pid}/stages/{lost_id}/move", json={"position": 3}).status_code == 422
    assert (
        manager.patch(f"/api/v1/pipelines/{pid}/stages/{default['stages'][0]['id']}", json={"name": "x"}).status_code
        == 404
    )
    assert manager.patch(f"/api/v1/pipelines/{pid}/stages/{first}", json={"probability": 101}).status_code == 422
    r = manager.post(f"/api/v1/pipelines/{pid}/default")
    assert r.status_code == 200 and r.json()["is_default"] is True
    assert [p["is_default"] for p in manager.get("/api/v1/pipelines").json()] == [False, True]
    # A rep reads but changes nothing.
    assert rep.post(f"/api/v1/pipelines/{pid}/stages", json={"name": "勝手"}).status_code == 403
    assert rep.post(f"/api/v1/pipelines/{default['id']}/default").status_code == 403
    with transaction(db) as s:
        actions = list(
            s.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "pipeline").order_by(AuditEntry.id))
        )
    assert actions == [
        "pipeline.create", "pipeline.stage_add", "pipeline.stage_update", "pipeline.stage_move", "pipeline.default",
    ]  # fmt: skip


def test_a_stage_holding_deals_keeps_its_kind(db, client_as):
    manager = client_as("manager")
    pipeline = manager.get("/api/v1/pipelines").json()[0]
    with transaction(db) as s:
        customer = factories.customer(s)
        deals.create_deal(s, actor=factories.SYSTEM, data=DealCreate(name="案件", customer_id=customer.id))
    first = pipeline["stages"][0]
    r = manager.patch(f"/api/v1/pipelines/{pipeline['id']}/stages/{first['id']}", json={"kind": "won", "name": "済"})
    assert r.status_code == 422 and "holds 1 deals" in r.text
    assert _stages(db, pipeline["id"])[0] == ("アポイント", "Appointment", 10, "open")  # nothing changed


def _form(ui, path: str) -> str:  # noqa: ANN001
    return csrf_of(ui.get(path).text)


def test_manager_sets_up_a_pipeline_in_the_ui_with_errors_beside_the_fields(db, ui_client):
    ui = ui_client("manager")
    token = _form(ui, "/deals/pipelines")
    r = ui.post("/deals/pipelines", data={"name": "", "csrf_token": token})
    assert r.status_code == 422 and 'data-testid="error-name"' in r.text
    r = ui.post("/deals/pipelines", data={"name": "営業パイプライン", "csrf_token": token})
    assert r.status_code == 422 and 'data-testid="error-name"' in r.text and "already exists" in r.text
    r = ui.post("/deals/pipelines", data={"name": "パートナー経由", "name_en": "Partners"}, follow_redirects=False)
    assert r.status_code == 403  # no CSRF token
    r = ui.post(
        "/deals/pipelines",
        data={"name": "パートナー経由", "name_en": "Partners", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    path = r.headers["location"].split("?")[0]
    with transaction(db) as s:
        pid = s.scalar(select(Pipeline.id).where(Pipeline.name == "パートナー経由"))
    assert path == f"/deals/pipelines/{pid}"
    page = ui.get(path).text
    assert "アポイント" in page and 'data-testid="make-default"' in page
    r = ui.post(f"{path}/stages", data={"name": "契約", "probability": "150", "kind": "open", "csrf_token": token})
    assert r.status_code == 422 and 'data-testid="error-probability"' in r.text and 'value="契約"' in r.text
    assert len(_stages(db, pid)) == 6
    r = ui.post(
        f"{path}/stages",
        data={"name": "契約", "name_en": "Contract", "probability": "90", "kind": "open", "csrf_token": token},
    )
    assert r.status_code == 200 and _stages(db, pid)[-1] == ("契約", "Contract", 90, "open")
    with transaction(db) as s:
        ids = [x.id for x in pipelines.stages_of(s, pid)]
    r = ui.post(
        f"{path}/stages/{ids[1]}",
        data={"name": "", "name_en": "", "probability": "30", "kind": "open", "csrf_token": token},
    )
    assert r.status_code == 422 and f'data-testid="error-{ids[1]}-name"' in r.text
    r = ui.post(
        f"{path}/stages/{ids[1]}",
        data={"name": "課題把握", "name_en": "Needs", "probability": "30", "kind": "open", "csrf_token": token},
    )
    assert r.status_code == 200 and _stages(db, pid)[1] == ("課題把握", "Needs", 30, "open")
    ui.post(f"{path}/stages/{ids[6]}/move", data={"position": "4", "csrf_token": token})
    assert [x[0] for x in _stages(db, pid)][3:6] == ["交渉", "契約", "受注"]
    ui.post(f"{path}/default", data={"csrf_token": token})
    with transaction(db) as s:
        assert pipelines.default_pipeline(s).id == pid
        assert s.scalar(select(Stage.name).where(Stage.id == ids[1])) == "課題把握"


def test_manager_makes_a_team_and_sets_its_members_and_a_rep_cannot(db, ui_client):
    ui = ui_client("manager")
    rep = ui_client("sales")
    with transaction(db) as s:
        users = dict(s.execute(select(User.email, User.id)).all())
    token = _form(ui, "/deals/teams")
    r = ui.post("/deals/teams", data={"name": " ", "csrf_token": token})
    assert r.status_code == 422 and 'data-testid="error-name"' in r.text
    r = ui.post(
        "/deals/teams",
        data={"name": "東日本営業", "member_ids": [str(users["sales-1@example.com"])], "csrf_token": token},
    )
    assert r.status_code == 200 and "東日本営業" in r.text
    with transaction(db) as s:
        team, members = teams.list_teams(s)[0]
    assert members == [users["sales-1@example.com"]]
    ids = sorted(users.values())
    r = ui.post(f"/deals/teams/{team.id}/members", data={"member_ids": [str(i) for i in ids], "csrf_token": token})
    assert r.status_code == 200
    with transaction(db) as s:
        assert teams.members(s, team.id) == ids
    r = ui.post(f"/deals/teams/{team.id}/members", data={"member_ids": ["99999"], "csrf_token": token})
    assert r.status_code == 422 and f'data-testid="error-team-{team.id}"' in r.text and "99999" in r.text
    with transaction(db) as s:
        assert teams.members(s, team.id) == ids  # nothing half-saved
    assert rep.get("/deals/teams").status_code == 403
    assert rep.get("/deals/pipelines").status_code == 403
    assert 'data-testid="teams-tab"' not in rep.get("/deals").text
    assert 'data-testid="teams-tab"' in ui.get("/deals").text


@pytest.mark.browser
def test_set_up_pages_fit_a_phone_and_pass_axe(live_server, sign_in, db):
    page = sign_in("manager", "boss@example.com")
    with transaction(db) as s:
        pid = pipelines.default_pipeline(s).id
        teams.create_team(s, actor=factories.SYSTEM, name="西日本営業", member_ids=[])
    problems = phone_problems(page, live_server, ("/deals/pipelines", f"/deals/pipelines/{pid}", "/deals/teams"))
    assert not problems, "\n".join(problems)
