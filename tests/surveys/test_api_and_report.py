"""``/api/v1/surveys``: CRUD with roles and audit, answers, links for other tools, and NPS by month, segment,
touchpoint and owner with known numbers; the CLI's links."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from kizuna.auth.models import AuditEntry
from kizuna.db import transaction
from kizuna.segments import service as segments
from kizuna.segments.schemas import SegmentCreate
from kizuna.surveys import service
from kizuna.surveys.report import report
from tests import factories
from tests.cli import kizuna
from tests.surveys.conftest import MARKETER, link_path, survey, token_of

BODY = {"name": "サポート後", "question_ja": "いかがでしたか?", "question_en": "How was it?", "touchpoint": "support"}


def test_marketers_manage_surveys_and_every_role_reads_them(client_as, db):
    marketer, support, viewer = client_as("marketer"), client_as("support"), client_as("viewer")
    assert support.post("/api/v1/surveys", json=BODY).status_code == 403
    created = marketer.post("/api/v1/surveys", json=BODY)
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert marketer.post("/api/v1/surveys", json=BODY).status_code == 409
    assert viewer.get(f"/api/v1/surveys/{sid}").json()["touchpoint"] == "support"
    assert viewer.get(f"/api/v1/surveys/{sid}/nps").status_code == 200
    assert viewer.patch(f"/api/v1/surveys/{sid}", json={"active": False, "version": 1}).status_code == 403
    changed = marketer.patch(f"/api/v1/surveys/{sid}", json={"active": False, "version": 1})
    assert changed.status_code == 200 and changed.json()["version"] == 2 and changed.json()["active"] is False
    stale = marketer.patch(f"/api/v1/surveys/{sid}", json={"name": "x", "version": 1})
    assert stale.status_code == 409
    assert marketer.delete(f"/api/v1/surveys/{sid}").status_code == 204
    assert viewer.get(f"/api/v1/surveys/{sid}").status_code == 404
    with transaction(db) as session:
        actions = list(session.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "survey")))
    assert actions == ["survey.create", "survey.update", "survey.delete"]


def test_bad_survey_input_is_refused_with_the_field_named(client):
    r = client.post("/api/v1/surveys", json={**BODY, "question_en": "  "})
    assert r.status_code == 422 and "question_en" in r.text
    r = client.post("/api/v1/surveys", json={**BODY, "link_days": 0})
    assert r.status_code == 422 and "link_days" in r.text
    assert client.get("/api/v1/surveys/999/nps").status_code == 404
    assert client.get("/api/v1/surveys/999/responses").status_code == 404
    assert client.post("/api/v1/surveys/999/links", json={"customer_id": 1}).status_code == 404


def test_links_for_other_tools_lead_to_the_answer_page(client, db):
    with transaction(db) as session:
        sid = survey(session).id
        cid = factories.customer(session, email="t@example.jp").id
    r = client.post(f"/api/v1/surveys/{sid}/links", json={"customer_id": cid, "send_key": "pos-receipt-77"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["score"] for x in body["links"]] == list(range(11)) and body["send_key"] == "pos-receipt-77"
    url = body["links"][10]["url"]
    assert url.startswith("http://testserver/nps/") and url.endswith("?score=10")
    page = client.get(url.removeprefix("http://testserver"))
    assert page.status_code == 200 and 'value="10" checked' in page.text
    assert client.get(f"/api/v1/surveys/{sid}/responses").json() == []
    client.post(url.removeprefix("http://testserver").split("?")[0], data={"score": "10", "comment": "good"})
    [answer] = client.get(f"/api/v1/surveys/{sid}/responses").json()
    assert (answer["score"], answer["category"], answer["send_key"], answer["source"]) == (
        10,
        "promoter",
        "pos-receipt-77",
        "link",
    )
    bad = client.post(f"/api/v1/surveys/{sid}/links", json={"customer_id": 12345})
    assert bad.status_code == 422 and "customer 12345 does not exist" in bad.text
    assert client.get(f"/api/v1/surveys/{sid}/nps?by=weekday").status_code == 422


def _answer(session, sid: int, cid: int, score: int, key: str, at: dt.datetime) -> None:  # noqa: ANN001
    path = link_path(session, sid, cid, send_key=key, now=at)
    service.answer(session, token_of(path), score=score, now=at)


def test_nps_by_month_segment_touchpoint_and_owner(db, client):
    with transaction(db) as session:
        owner = factories.user(session, email="owner@example.com", role="sales", name="佐藤")
        sid = survey(session).id
        tokyo = [
            factories.customer(session, email=f"t{i}@example.jp", prefecture="東京都", owner_id=owner.id).id
            for i in range(4)
        ]
        osaka = [factories.customer(session, email=f"o{i}@example.jp", prefecture="大阪府").id for i in range(2)]
        seg = segments.create_segment(
            session, actor=MARKETER,
            data=SegmentCreate(name="東京", rule={"attribute": "prefecture", "op": "eq", "value": "東京都"}),
        )  # fmt: skip
        session.flush()
        segments.refresh(session, seg.id, actor=MARKETER)
        jan = dt.datetime(2026, 1, 15, 3, tzinfo=dt.UTC)
        feb = dt.datetime(2026, 2, 10, 3, tzinfo=dt.UTC)
        # January: Tokyo 10, 9, 6 -> 2 promoters, 1 detractor of 3 = +33.3
        for cid, score in zip(tokyo[:3], (10, 9, 6), strict=True):
            _answer(session, sid, cid, score, "jan", jan)
        # February: Tokyo 7, Osaka 0 and 3 -> 0 promoters, 2 detractors of 3 = -66.7
        for cid, score in ((tokyo[3], 7), (osaka[0], 0), (osaka[1], 3)):
            _answer(session, sid, cid, score, "feb", feb)
        # 31 Jan 20:00 UTC is 1 Feb in Tokyo: a February answer (a promoter), with another touchpoint.
        other = survey(session, name="x", touchpoint="support")
        s = service.get_survey(session, sid)
        s.touchpoint = "support"
        session.flush()
        _answer(session, sid, osaka[0], 9, "late", dt.datetime(2026, 1, 31, 20, tzinfo=dt.UTC))
        assert other.id != sid
    by_month = client.get(f"/api/v1/surveys/{sid}/nps?by=month").json()
    assert by_month["total"] == {
        "key": "", "label": "", "responses": 7, "promoters": 3, "passives": 1, "detractors": 3, "nps": 0.0,
    }  # fmt: skip
    assert [(r["key"], r["responses"], r["nps"]) for r in by_month["rows"]] == [
        ("2026-01", 3, 33.3),
        ("2026-02", 4, -25.0),
    ]
    by_segment = client.get(f"/api/v1/surveys/{sid}/nps?by=segment").json()["rows"]
    assert [(r["label"], r["responses"], r["nps"]) for r in by_segment] == [("東京", 4, 25.0)]
    by_touchpoint = client.get(f"/api/v1/surveys/{sid}/nps?by=touchpoint").json()["rows"]
    assert [(r["key"], r["responses"], r["nps"]) for r in by_touchpoint] == [
        ("purchase", 6, -16.7),
        ("support", 1, 100.0),
    ]
    by_owner = client.get(f"/api/v1/surveys/{sid}/nps?by=owner").json()["rows"]
    assert [(r["label"], r["responses"], r["nps"]) for r in by_owner] == [("佐藤", 4, 25.0), ("", 3, -33.3)]
    with transaction(db) as session:
        assert report(session, sid, by="owner").rows[0].key == str(owner.id)
    # A period is whole days in the configured zone (Asia/Tokyo): 31 Jan 20:00 UTC is 1 February there.
    february = client.get(f"/api/v1/surveys/{sid}/nps?by=touchpoint&from=2026-02-01&to=2026-02-28").json()
    assert (february["total"]["responses"], february["total"]["nps"]) == (4, -25.0)
    january = client.get(f"/api/v1/surveys/{sid}/nps", params={"to": "2026-01-31"}).json()
    assert [(r["key"], r["responses"]) for r in january["rows"]] == [("2026-01", 3)]
    backwards = client.get(f"/api/v1/surveys/{sid}/nps", params={"from": "2026-03-01", "to": "2026-02-01"})
    assert backwards.status_code == 422 and "after it ends" in backwards.text
    assert client.get(f"/api/v1/surveys/{sid}/nps", params={"from": "yesterday"}).status_code == 422


def test_the_cli_prints_a_customers_links(db):
    with transaction(db) as session:
        sid = survey(session).id
        cid = factories.customer(session, email="cli@example.jp").id
    out = kizuna("surveys", "link", str(sid), str(cid), "--send-key", "s1", "--format", "json", engine=db,
                 KIZUNA_PUBLIC_URL="https://crm.example.com")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    body = json.loads(out.stdout)
    assert len(body["links"]) == 11 and body["links"][6]["url"].startswith("https://crm.example.com/nps/")
    missing = kizuna("surveys", "link", "999", str(cid), engine=db, KIZUNA_PUBLIC_URL="https://crm.example.com")
    assert missing.returncode == 2 and "survey 999 not found" in missing.stdout
    nps = kizuna("surveys", "nps", str(sid), engine=db)
    assert nps.returncode == 0 and "total" in nps.stdout
