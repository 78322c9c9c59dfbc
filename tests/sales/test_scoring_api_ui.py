"""Scoring through the real API and the UI pages on both backends: train (and its refusal without history),
models, rules (edited, and refused whole when one is wrong), the call-first list; a viewer and a rep cannot
train or edit rules; the worker retrains on its schedule."""

from __future__ import annotations

import html

from sqlalchemy import func, select

from kizuna.db import transaction
from kizuna.outbox.models import OutboxMessage
from kizuna.sales.scoring.models import ScoringModel, ScoringRule
from tests.sales.scoring_history import seed_history
from tests.web.conftest import csrf_of


def test_api_train_models_and_call_first(client_as, db):
    manager = client_as("manager")
    r = manager.post("/api/v1/scoring/train")
    assert r.status_code == 422 and "too little history to train the deal model: 0 closed" in r.text
    with transaction(db) as s:
        assert s.scalar(select(func.count()).select_from(ScoringModel)) == 0
    ids = seed_history(db, closed=100, open_deals=2, leads=1)
    r = manager.post("/api/v1/scoring/train")
    assert r.status_code == 200, r.text
    trained = r.json()
    assert trained["version"] == 1 and trained["models"][0]["subject"] == "deal"
    assert trained["models"][0]["cv_auc"] > 0.7 and trained["scored"] == {"deal": 2, "lead": 1}
    models = manager.get("/api/v1/scoring/models").json()
    assert [m["subject"] for m in models] == ["deal"] and models[0]["calibration"]
    items = manager.get("/api/v1/scoring/call-first").json()["items"]
    assert items[0]["deal_id"] == ids["open"][0] and items[0]["factors"][0]["feature"] == "act_meeting"
    assert items[0]["score"] == round(items[0]["probability"] * 100)
    leads = manager.get("/api/v1/scoring/call-first", params={"subject": "lead"}).json()["items"]
    assert [i["customer_id"] for i in leads] == ids["leads"] and leads[0]["method"] == "rules"
    with transaction(db) as s:
        assert s.scalar(select(OutboxMessage).where(OutboxMessage.topic == "scoring.trained")) is not None


def test_viewer_and_rep_cannot_train_or_edit_rules(client_as, db):
    seed_history(db, closed=60, open_deals=1, leads=0)
    viewer, rep = client_as("viewer"), client_as("sales")
    for c in (viewer, rep):
        assert c.post("/api/v1/scoring/train").status_code == 403
        assert c.put("/api/v1/scoring/rules", json={"rules": []}).status_code == 403
        assert c.get("/api/v1/scoring/call-first").status_code == 200
        assert c.get("/api/v1/scoring/rules").status_code == 200
    with transaction(db) as s:
        assert s.scalar(select(func.count()).select_from(ScoringModel)) == 0


def test_api_rules_replace_whole_or_not_at_all(client_as, db):
    ids = seed_history(db, closed=0, open_deals=1, leads=0)
    admin = client_as("admin")
    got = admin.get("/api/v1/scoring/rules").json()
    assert "+20 if stage >= 提案" in [r["text"] for r in got["rules"]] and "act_meeting" in got["features"]["deal"]
    bad = {"rules": [
        {"subject": "deal", "feature": "amount", "op": ">=", "value": "100", "points": 50},
        {"subject": "deal", "feature": "stage", "op": ">=", "value": "存在しない", "points": 5},
    ]}  # fmt: skip
    r = admin.put("/api/v1/scoring/rules", json=bad)
    assert r.status_code == 422 and "no pipeline has a stage named '存在しない'" in r.text
    with transaction(db) as s:
        assert s.scalar(select(func.count()).select_from(ScoringRule)) == len(got["rules"])
    good = {"rules": [{"subject": "deal", "feature": "amount", "op": ">=", "value": "100", "points": 50}]}
    r = admin.put("/api/v1/scoring/rules", json=good)
    assert r.status_code == 200 and [x["text"] for x in r.json()["rules"]] == ["+50 if amount >= 100"]
    items = admin.get("/api/v1/scoring/call-first").json()["items"]
    assert items[0]["deal_id"] == ids["open"][0] and items[0]["score"] == 50
    assert items[0]["factors"] == [
        {"feature": "amount", "value": 1000000.0, "contribution": None, "points": 50, "rule": "+50 if amount >= 100"}
    ]


def test_ui_train_button_rules_form_and_call_first_page(ui_client, db):
    manager, viewer = ui_client("manager"), ui_client("viewer")
    page = manager.get("/sales/scoring")
    assert page.status_code == 200 and 'data-testid="scoring-train"' in page.text
    r = manager.post("/sales/scoring/train", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 422 and "学習に必要な履歴が足りません" in r.text
    seed_history(db, closed=80, open_deals=2, leads=1)
    r = manager.post("/sales/scoring/train", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    page = manager.get("/sales/scoring")
    assert 'data-testid="scoring-auc-deal"' in page.text and "実際の受注率" in page.text
    # The rules form: one bad points value changes nothing and says which.
    form = {"csrf_token": csrf_of(page.text), "rows": "1", "r0_subject": "deal", "r0_feature": "amount",
            "r0_op": ">=", "r0_value": "10", "r0_points": "many"}  # fmt: skip
    r = manager.post("/sales/scoring/rules", data=form)
    assert r.status_code == 422 and "points 'many' is not a whole number" in html.unescape(r.text)
    r = manager.post("/sales/scoring/rules", data={**form, "r0_points": "30"}, follow_redirects=False)
    assert r.status_code == 303
    with transaction(db) as s:
        assert [(x.feature, x.points) for x in s.scalars(select(ScoringRule))] == [("amount", 30)]
    listing = viewer.get("/sales/call-first")
    assert listing.status_code == 200 and listing.text.count('data-testid="call-first-row"') == 3
    assert "打合せ" in listing.text  # the top deal's factor, named in Japanese
    viewer_page = viewer.get("/sales/scoring")
    assert 'data-testid="scoring-train"' not in viewer_page.text and "scoring-rules-form" not in viewer_page.text
    assert viewer.post("/sales/scoring/train", data={"csrf_token": csrf_of(viewer_page.text)}).status_code == 403


def test_worker_retrains_on_schedule(db):
    from kizuna.outbox import worker
    from kizuna.outbox.models import OutboxDelivery
    from kizuna.sales.scoring import schedule, service
    from tests import factories

    seed_history(db, closed=60, open_deals=1, leads=0)
    with transaction(db) as s:
        service.train(s, actor=factories.SYSTEM)
    with transaction(db) as s:
        tick = s.scalar(select(OutboxMessage).where(OutboxMessage.topic == schedule.TOPIC))
        assert tick is not None and tick.available_at > tick.created_at
        # Make the tick due now, as if the days had passed.
        tick.available_at = tick.created_at
        for d in s.scalars(select(OutboxDelivery).where(OutboxDelivery.message_id == tick.id)):
            d.available_at = tick.created_at
    worker.run_once(db)
    with transaction(db) as s:
        assert sorted(s.scalars(select(ScoringModel.version))) == [1, 2]
        waiting = s.scalars(select(OutboxMessage.id).where(OutboxMessage.topic == schedule.TOPIC)).all()
        assert len(waiting) == 2  # the one handled and the next
