"""Segment pages over HTTP: the list, the builder's preview route (CSRF), saving, the page with members."""

from __future__ import annotations

import json

import pytest

from tests.segments.conftest import build_world
from tests.web.conftest import csrf_of


@pytest.fixture
def world(db):  # noqa: ANN001, ANN201
    return build_world(db)


TOKYO = {"all": [{"attribute": "prefecture", "op": "eq", "value": "東京都"}]}


def test_build_preview_save_and_see_members_in_japanese(ui_client, world):
    client = ui_client("marketer")
    page = client.get("/segments/new")
    assert page.status_code == 200 and "条件を追加" in page.text
    token = csrf_of(page.text)
    assert client.post("/segments/preview", data={"rule": json.dumps(TOKYO)}).status_code == 403
    found = client.post("/segments/preview", data={"csrf_token": token, "rule": json.dumps(TOKYO)}).json()
    assert found["count"] == 2
    bad = client.post("/segments/preview", data={"csrf_token": token, "rule": '{"all": [{"tag": 1}]}'})
    assert bad.status_code == 422 and "all[0].tag" in bad.json()["error"]
    saved = client.post(
        "/segments/new",
        data={"csrf_token": token, "name": "東京の顧客", "rule": json.dumps(TOKYO)},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    shown = client.get(saved.headers["location"])
    assert shown.status_code == 200 and "秋" in shown.text and "在籍中" in shown.text
    assert "東京の顧客" in client.get("/segments").text
    again = client.post("/segments/new", data={"csrf_token": token, "name": "東京の顧客", "rule": json.dumps(TOKYO)})
    assert again.status_code == 422 and "既にあります" in again.text


def test_a_viewer_sees_segments_but_no_new_button(ui_client, world):
    client = ui_client("viewer")
    page = client.get("/segments")
    assert page.status_code == 200 and "/segments/new" not in page.text
