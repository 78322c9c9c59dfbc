"""Campaigns in a real Chromium: a marketer creates an A/B campaign with the form, sends it, the worker fixes
its audience, and the page shows the variants' numbers (matching the API) and a drawn chart."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from kizuna.campaigns.schedule import tick
from kizuna.db import transaction
from kizuna.messaging.models import Template
from kizuna.segments import service as segments
from kizuna.segments.schemas import SegmentCreate
from tests import factories
from tests.conftest import make_token

pytestmark = pytest.mark.browser


def test_create_an_ab_campaign_send_it_and_see_the_numbers(sign_in, db: Engine, app) -> None:
    with transaction(db) as s:
        for i in range(12):
            factories.customer(s, email=f"k{i}@example.jp", prefecture="東京都")
        s.add(
            Template(
                name="冬のご案内", channel="email", subject="冬のご案内", html="<p>こんにちは</p>", text="こんにちは"
            )
        )
        rule = {"attribute": "prefecture", "op": "eq", "value": "東京都"}
        segment = segments.create_segment(s, actor=factories.SYSTEM, data=SegmentCreate(name="東京", rule=rule))
        segments.refresh(s, segment.id, actor=factories.SYSTEM)
    page = sign_in("marketer")
    page.get_by_test_id("nav-campaigns").click()
    page.wait_for_url(re.compile(r".*/campaigns$"))
    page.get_by_test_id("new-campaign").click()
    page.locator("#f-name").fill("冬のセール")
    page.locator("#f-segment_id").select_option(label="東京 (12)")
    page.locator("#f-template_id").select_option(label="冬のご案内 (メール)")
    page.locator("#f-subject").fill("冬のセール開催中")
    page.locator("#f-subject_b").fill("最大50%オフ")
    page.locator("#f-sample_percent").fill("50")
    page.get_by_test_id("save-campaign").click()
    page.wait_for_url(re.compile(r".*/campaigns/\d+$"))
    assert page.get_by_test_id("campaign-status").inner_text() == "下書き"
    page.get_by_test_id("schedule-campaign").click()
    page.wait_for_url(re.compile(r".*/campaigns/\d+$"))
    assert page.get_by_test_id("campaign-status").inner_text() == "予約済み"
    campaign_id = int(page.url.rsplit("/", 1)[1])

    assert tick(db, force=True) >= 1  # the worker's pump: launches the due campaign
    page.reload()
    assert page.get_by_test_id("campaign-status").inner_text() == "テスト中"
    assert page.get_by_test_id("campaign-audience").inner_text() == "12"
    token = make_token(db, "api-marketer@example.com", "marketer")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as api:
        stats = api.get(f"/api/v1/campaigns/{campaign_id}/stats").json()
    assert [v["variant"] for v in stats["variants"]] == ["A", "B", "-"]  # "-": the remainder awaiting the winner
    assert [v["messages"] for v in stats["variants"]] == [3, 3, 6]
    rows = page.get_by_test_id("campaign-stats").locator("tbody tr").all_inner_texts()
    assert rows[0].split("\t")[:2] == ["A", "3"] and rows[-1].split("\t")[:2] == ["合計", "12"]
    page.wait_for_selector(".chart .main-svg")  # plotly drew it (served by Kizuna, no CDN)
    assert page.locator(".chart .main-svg rect.bg, .chart .bars path").count() > 0

    page.get_by_test_id("pause-campaign").click()
    page.wait_for_url(re.compile(r".*/campaigns/\d+$"))
    assert page.get_by_test_id("campaign-status").inner_text() == "一時停止"
