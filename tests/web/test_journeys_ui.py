"""The journey pages over HTTP: list, new, the builder page and its JSON endpoints (save with problems named at
their steps, validate, publish, live counts), status changes, enrolment, the numbers with their CSVs, CSRF and
permissions."""

from __future__ import annotations

import csv
import io
import json
import re

from kizuna.db import transaction
from kizuna.journeys import engine
from tests import factories
from tests.journeys.conftest import template
from tests.web.conftest import csrf_of


def _data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="journey-data">(.*?)</script>', html, re.S)
    assert match, "the builder's data is missing"
    return json.loads(match.group(1))


def test_build_publish_enrol_and_read_the_numbers(ui_client, db):
    with transaction(db) as s:
        template(s)
        ids = [factories.customer(s, email=f"u{i}@example.jp").id for i in range(3)]
    c = ui_client("marketer")
    page = c.get("/journeys/new")
    made = c.post("/journeys/new", data={"name": "ようこそ", "csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert made.status_code == 303
    url = made.headers["location"]
    page = c.get(url)
    assert page.status_code == 200 and "ようこそ" in page.text
    data = _data(page.text)
    token = csrf_of(page.text)
    assert data["definition"]["steps"] == [{"id": "exit", "type": "exit"}] and data["editable"] is True
    assert {"name": "welcome-mail", "channel": "email"} in data["choices"]["templates"]

    definition = data["definition"]
    definition["steps"] = [
        {"id": "m1", "type": "send", "template": "welcome-mail", "next": "exit"},
        {"id": "exit", "type": "exit"},
        {"id": "lost", "type": "wait", "duration": "P1D"},
    ]
    definition["start"] = "m1"
    headers = {"Accept": "application/json"}
    body = {"csrf_token": token, "definition": json.dumps(definition)}
    refused = c.post(f"{url}/draft", data=body, headers=headers)
    assert refused.status_code == 422
    assert [(p["step"], p["code"]) for p in refused.json()["problems"]] == [("lost", "unreachable")]
    checked = c.post(f"{url}/validate", data=body, headers=headers).json()
    assert checked["ok"] is False and checked["problems"][0]["step"] == "lost"
    assert c.post(f"{url}/draft", data={"definition": json.dumps(definition)}, headers=headers).status_code == 403

    definition["steps"].pop()
    body["definition"] = json.dumps(definition)
    assert c.post(f"{url}/draft", data=body, headers=headers).json() == {"ok": True, "problems": []}
    assert c.post(f"{url}/publish", data=body, headers=headers).json() == {"ok": True, "version": 1}
    page = c.get(url)
    assert 'data-testid="journey-status">' in page.text and "enroll-form" in page.text
    enrolled = c.post(
        f"{url}/enroll",
        data={"csrf_token": token, "customer_ids": f"{ids[0]}, {ids[1]}\n{ids[2]}"},
        follow_redirects=False,
    )
    assert enrolled.status_code == 303
    engine.run_until_idle(db)
    counts = c.get(f"{url}/counts").json()
    assert counts["counts"]["m1"]["entered"] == 3 and counts["counts"]["m1"]["messages"]["queued"] == 3
    assert counts["statuses"] == {"completed": 3}

    stats = c.get(f"{url}/stats")
    assert stats.status_code == 200 and 'id="funnel-data"' in stats.text and 'id="sankey-data"' in stats.text
    steps = list(csv.DictReader(io.StringIO(c.get(f"{url}/steps.csv").text.lstrip("\ufeff"))))
    assert [(r["step"], r["entered"], r["messages_queued"]) for r in steps] == [("m1", "3", "3"), ("exit", "3", "")]
    paths = list(csv.DictReader(io.StringIO(c.get(f"{url}/paths.csv").text.lstrip("\ufeff"))))
    assert paths == [{"from_step": "m1", "to_step": "exit", "customers": "3"}]
    assert c.get(f"{url}/variants.csv").text.lstrip("\ufeff").startswith("variant,customers,clicked")

    paused = c.post(f"{url}/status", data={"csrf_token": token, "action": "pause"}, follow_redirects=False)
    assert paused.status_code == 303 and 'class="badge journey-paused"' in c.get(url).text


def test_a_viewer_sees_the_builder_read_only_and_cannot_post(ui_client, db):
    with transaction(db) as s:
        from kizuna.journeys import service
        from tests.journeys.conftest import MARKETER

        journey = service.create_journey(s, actor=MARKETER, definition=service.starter("読むだけ"))
    c = ui_client("viewer")
    page = c.get(f"/journeys/{journey.id}")
    assert page.status_code == 200 and _data(page.text)["editable"] is False
    assert 'data-testid="new-journey"' not in c.get("/journeys").text
    body = {"csrf_token": csrf_of(page.text), "definition": json.dumps(service.starter("x"))}
    assert c.post(f"/journeys/{journey.id}/draft", data=body).status_code == 403
