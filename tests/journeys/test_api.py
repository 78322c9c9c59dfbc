"""``/api/v1/journeys`` end to end: create a draft, refuse a broken one with the step named, publish versions,
pause, resume, archive (each audited and announced on the outbox), enrol, run the worker and read the numbers."""

from __future__ import annotations

from sqlalchemy import select

from kizuna.auth.models import AuditEntry
from kizuna.db import transaction
from kizuna.outbox.models import OutboxMessage
from kizuna.outbox.worker import run_once
from tests import factories
from tests.journeys.conftest import definition, template

STEPS = [
    {"id": "w", "type": "wait", "duration": "P0D", "next": "m"},
    {"id": "m", "type": "send", "template": "welcome-mail", "next": "x"},
    {"id": "x", "type": "exit"},
]


def test_a_journey_from_draft_to_numbers(client, db):
    with transaction(db) as s:
        template(s)
        ids = [factories.customer(s, email=f"a{i}@example.jp").id for i in range(3)]
    raw = definition(STEPS)
    made = client.post("/api/v1/journeys", json={"definition": raw})
    assert made.status_code == 201, made.text
    journey = made.json()
    assert (journey["status"], journey["live_version"], journey["unpublished_changes"]) == ("draft", None, True)
    jid = journey["id"]
    refused = client.post(f"/api/v1/journeys/{jid}/enrollments", json={"customer_ids": ids})
    assert refused.status_code == 409

    published = client.post(f"/api/v1/journeys/{jid}/publish").json()
    assert (published["status"], published["live_version"], published["unpublished_changes"]) == ("live", 1, False)
    assert client.post(f"/api/v1/journeys/{jid}/publish").json()["live_version"] == 1  # nothing changed

    enrolled = client.post(f"/api/v1/journeys/{jid}/enrollments", json={"customer_ids": [*ids, ids[0]]})
    assert enrolled.json() == {"enrolled": 3, "skipped": 0}
    run_once(db, worker="w")
    stats = client.get(f"/api/v1/journeys/{jid}/stats").json()
    steps = {s["step"]: s for s in stats["steps"]}
    assert [s["step"] for s in stats["steps"]] == ["w", "m", "x"]
    assert (steps["m"]["entered"], steps["m"]["completed"], steps["x"]["completed"]) == (3, 3, 3)
    # The worker's sender ran too: these customers gave no marketing consent, so each message is skipped.
    assert steps["m"]["messages"]["skipped"] == 3 and steps["w"]["messages"] is None
    assert stats["statuses"] == {"completed": 3} and stats["enrolled"] == 3
    assert sorted(map(tuple, stats["links"])) == [("m", "x", 3), ("w", "m", 3)]

    # Editing a live journey changes the draft only, until it is published as version 2.
    raw["steps"][0]["duration"] = "P1D"
    edited = client.put(f"/api/v1/journeys/{jid}", json={"definition": raw}).json()
    assert (edited["live_version"], edited["unpublished_changes"]) == (1, True)
    assert edited["live_definition"]["steps"][0]["duration"] == "P0D"
    assert client.post(f"/api/v1/journeys/{jid}/publish").json()["live_version"] == 2
    for action, status in (("pause", "paused"), ("resume", "live"), ("archive", "archived")):
        answer = client.post(f"/api/v1/journeys/{jid}/{action}")
        assert answer.status_code == 200 and answer.json()["status"] == status
    assert client.post(f"/api/v1/journeys/{jid}/resume").status_code == 409
    listed = client.get("/api/v1/journeys").json()
    assert [(j["name"], j["status"], j["live_version"], j["enrolled"]) for j in listed] == [
        ("Welcome", "archived", 2, 3)
    ]
    with transaction(db) as s:
        topics = s.scalars(
            select(OutboxMessage.topic).where(OutboxMessage.topic.like("journey.%")).order_by(OutboxMessage.id)
        ).all()
        actions = s.scalars(
            select(AuditEntry.action).where(AuditEntry.entity_type == "journey").order_by(AuditEntry.id)
        ).all()
    assert topics == ["journey.published", "journey.published", "journey.paused", "journey.resumed", "journey.archived"]
    assert actions == [
        "journey.create",
        "journey.published",
        "journey.enroll",
        "journey.update",
        "journey.published",
        "journey.paused",
        "journey.resumed",
        "journey.archived",
    ]


def test_a_broken_definition_is_refused_with_the_step_named_and_validate_lists_every_problem(client, db):
    with transaction(db) as s:
        template(s)
    raw = definition(STEPS)
    raw["steps"].append({"id": "stray", "type": "tag", "add": ["x"]})
    answer = client.post("/api/v1/journeys", json={"definition": raw})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["field"] == "steps.stray" and "step 'stray' cannot be reached from the start" in error["message"]
    checked = client.post("/api/v1/journeys/validate", json={"definition": raw}).json()
    assert checked["valid"] is False
    assert [(p["step"], p["code"]) for p in checked["problems"]] == [("stray", "unreachable")]
    assert client.post("/api/v1/journeys/validate", json={"definition": definition(STEPS)}).json() == {
        "valid": True,
        "problems": [],
    }
    assert client.post("/api/v1/journeys", json={"definition": definition(STEPS)}).status_code == 201
    taken = client.post("/api/v1/journeys", json={"definition": definition(STEPS)})
    assert taken.status_code == 409


def test_a_viewer_reads_but_cannot_change_journeys(client, client_as, db):
    with transaction(db) as s:
        template(s)
    jid = client.post("/api/v1/journeys", json={"definition": definition(STEPS)}).json()["id"]
    viewer = client_as("viewer")
    assert viewer.get(f"/api/v1/journeys/{jid}").status_code == 200
    assert viewer.get(f"/api/v1/journeys/{jid}/stats").status_code == 200
    assert viewer.post(f"/api/v1/journeys/{jid}/publish").status_code == 403
    assert viewer.post("/api/v1/journeys", json={"definition": definition(STEPS, name="x")}).status_code == 403
    assert client.get("/api/v1/journeys/999").status_code == 404
