"""The segment builder in a real Chromium: build a rule from rows, see the live count equal the API's preview of
the same rule, save it, and find its members on the segment's page."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.conftest import make_token
from tests.segments.conftest import build_world

pytestmark = pytest.mark.browser


def test_builder_live_count_matches_the_api_then_the_saved_segment_shows_its_members(sign_in, db: Engine, app) -> None:
    world = build_world(db)
    page = sign_in("marketer")
    page.get_by_test_id("nav-segments").click()
    page.wait_for_url(re.compile(r".*/segments$"))
    page.get_by_test_id("new-segment").click()
    page.wait_for_url(re.compile(r".*/segments/new$"))
    page.get_by_test_id("segment-name").fill("東京でセールを見た人")

    first = page.get_by_test_id("condition").nth(0)
    first.get_by_test_id("condition-field").select_option("attribute:prefecture")
    first.get_by_test_id("condition-op").select_option("eq")
    first.get_by_test_id("condition-value").fill("東京都")
    page.get_by_test_id("add-condition").click()
    second = page.get_by_test_id("condition").nth(1)
    second.get_by_test_id("condition-field").select_option("event")
    second.get_by_test_id("condition-value").fill("page_view")
    second.get_by_test_id("condition-days").fill("30")

    rule = {
        "all": [
            {"attribute": "prefecture", "op": "eq", "value": "東京都"},
            {"event": "page_view", "within_days": 30},
        ]
    }
    want = json.dumps(rule, separators=(",", ":"), ensure_ascii=False)
    page.wait_for_function("want => document.querySelector('[data-rule]').value === want", arg=want)
    token = make_token(db, "api-marketer@example.com", "marketer")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as api:
        expected = api.post("/api/v1/segments/preview", json={"rule": rule}).json()
    assert expected["count"] == 1
    page.wait_for_function(
        "want => document.querySelector('[data-count]').textContent === want", arg=str(expected["count"])
    )
    assert page.get_by_test_id("sample").locator("li").all_inner_texts() == [c["full_name"] for c in expected["sample"]]

    # "any" instead of "all": the count follows.
    page.get_by_test_id("match").select_option("any")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as api:
        wider = api.post("/api/v1/segments/preview", json={"rule": {"any": rule["all"]}}).json()["count"]
    page.wait_for_function("want => document.querySelector('[data-count]').textContent === want", arg=str(wider))
    page.get_by_test_id("match").select_option("all")
    page.wait_for_function(
        "want => document.querySelector('[data-count]').textContent === want", arg=str(expected["count"])
    )

    page.get_by_test_id("save-segment").click()
    page.wait_for_url(re.compile(r".*/segments/\d+$"))
    assert page.get_by_test_id("member-count").inner_text() == "1"
    members = page.get_by_test_id("members-table").locator("tbody tr").all_inner_texts()
    assert len(members) == 1 and "aki@example.com" in members[0]
    assert world["aki"]


def test_builder_offers_customer_custom_fields_by_their_type(sign_in, live_server: str, db: Engine) -> None:
    from kizuna.customers.models import Customer
    from kizuna.db import transaction
    from kizuna.fields import service as fields
    from kizuna.fields.schemas import CustomFieldCreate
    from tests import factories

    with transaction(db) as s:
        for body in (
            {"key": "plan", "type": "choice", "label": "プラン", "choices": ["gold", "10"]},
            {"key": "hobbies", "type": "multi_choice", "label": "趣味", "choices": ["ski", "tea"]},
            {"key": "renewal", "type": "date", "label": "更新日"},
        ):
            fields.create_field(s, actor=factories.SYSTEM, data=CustomFieldCreate(entity="customer", **body))
        for email, attributes in (
            ("gold-ski@example.jp", {"plan": "gold", "hobbies": ["ski"], "renewal": "2027-03-01"}),
            ("gold-tea@example.jp", {"plan": "gold", "hobbies": ["tea"], "renewal": "2026-01-01"}),
            ("ten-ski@example.jp", {"plan": "10", "hobbies": ["ski", "tea"]}),
        ):
            s.add(Customer(email=email, attributes=attributes))
    page = sign_in("marketer")
    page.goto(f"{live_server}/segments/new")
    first = page.get_by_test_id("condition").nth(0)
    first.get_by_test_id("condition-field").select_option(label="プラン")
    assert first.get_by_test_id("condition-value").is_hidden()
    assert first.get_by_test_id("condition-choice").locator("option").all_inner_texts() == ["gold", "10"]
    first.get_by_test_id("condition-choice").select_option("10")
    page.get_by_test_id("add-condition").click()
    second = page.get_by_test_id("condition").nth(1)
    second.get_by_test_id("condition-field").select_option(label="趣味")
    second.get_by_test_id("condition-op").select_option("has")
    second.get_by_test_id("condition-choice").select_option("ski")
    rule = {"all": [
        {"attribute": "attributes.plan", "op": "eq", "value": "10"},  # a choice that looks like a number stays text
        {"attribute": "attributes.hobbies", "op": "eq", "value": "ski"},
    ]}  # fmt: skip
    want = json.dumps(rule, separators=(",", ":"), ensure_ascii=False)
    page.wait_for_function("want => document.querySelector('[data-rule]').value === want", arg=want)
    page.wait_for_function("() => document.querySelector('[data-count]').textContent === '1'")
    assert page.get_by_test_id("sample").locator("li").all_inner_texts() == ["ten-ski@example.jp"]

    # A date field: a date box and "on or after".
    first.get_by_test_id("condition-field").select_option(label="更新日")
    assert first.get_by_test_id("condition-value").get_attribute("type") == "date"
    first.get_by_test_id("condition-op").select_option("on_or_after")
    first.get_by_test_id("condition-value").fill("2027-01-01")
    rule["all"][0] = {"attribute": "attributes.renewal", "op": "gte", "value": "2027-01-01"}
    want = json.dumps(rule, separators=(",", ":"), ensure_ascii=False)
    page.wait_for_function("want => document.querySelector('[data-rule]').value === want", arg=want)
    page.wait_for_function("() => document.querySelector('[data-sample]').textContent === 'gold-ski@example.jp'")
    assert page.get_by_test_id("live-count").inner_text() == "1"
