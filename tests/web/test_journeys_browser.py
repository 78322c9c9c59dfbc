"""The journey builder in a real Chromium: build manual trigger → wait 0 → email send on the flow diagram (add
steps, drag a box, connect an output to a step by dragging, edit settings in the side panel), see a problem shown
at its step, publish, enrol customers, run the worker, and watch the diagram's counts and the funnel fill."""

from __future__ import annotations

import os
import re

import pytest
from sqlalchemy.engine import Engine

from kizuna.db import transaction
from kizuna.outbox.worker import run_once
from tests import factories
from tests.journeys.conftest import template

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("KIZUNA_TEST_SHOTS")


def shot(page, name: str) -> None:  # noqa: ANN001
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


def drag(page, source, target) -> None:  # noqa: ANN001
    """Press on ``source``, move in steps (as a hand does) and release on ``target``."""
    a, b = source.bounding_box(), target.bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    for n in range(1, 6):
        page.mouse.move(
            a["x"] + (b["x"] + b["width"] / 2 - a["x"]) * n / 5, a["y"] + (b["y"] + b["height"] / 2 - a["y"]) * n / 5
        )
    page.mouse.up()


def test_build_a_journey_on_the_diagram_publish_it_and_see_the_funnel_fill(sign_in, live_server, db: Engine):
    with transaction(db) as s:
        template(s)
        ids = [factories.customer(s, email=f"b{i}@example.jp", family_name=f"客{i}").id for i in range(3)]
    page = sign_in("marketer")
    page.goto(f"{live_server}/lang/en?next=/customers")
    page.get_by_test_id("nav-journeys").click()
    page.wait_for_url(re.compile(r".*/journeys$"))
    page.get_by_test_id("new-journey").click()
    page.get_by_test_id("journey-name").fill("Welcome mail")
    page.get_by_test_id("create-journey").click()
    page.wait_for_url(re.compile(r".*/journeys/\d+$"))
    url = page.url

    # trigger → wait → send → exit, each added after the selected box.
    page.get_by_test_id("node-trigger").click()
    page.get_by_test_id("add-wait").click()
    panel = page.get_by_test_id("panel")
    for part in ("days", "hours", "minutes"):
        panel.get_by_test_id(f"field-{part}").fill("0")
        panel.get_by_test_id(f"field-{part}").dispatch_event("change")
    page.get_by_test_id("add-send").click()
    assert panel.get_by_test_id("field-template").input_value() == "welcome-mail"
    # Cut the send step loose from the exit in the panel, then connect it again by dragging its output.
    panel.get_by_test_id("field-next").select_option("")
    assert page.get_by_test_id("port-send1-next").get_attribute("class") == "port"
    page.get_by_test_id("node-exit").scroll_into_view_if_needed()
    shot(page, "before-drag")
    before = page.get_by_test_id("node-exit").bounding_box()
    page.mouse.move(before["x"] + 60, before["y"] + 30)
    page.mouse.down()
    page.mouse.move(before["x"] + 60, before["y"] + 150, steps=5)
    page.mouse.up()
    moved = page.get_by_test_id("node-exit").bounding_box()
    assert moved["y"] > before["y"] + 100  # the box was dragged down
    drag(page, page.get_by_test_id("port-send1-next"), page.get_by_test_id("node-exit"))
    assert page.get_by_test_id("port-send1-next").get_attribute("class") == "port linked"
    page.get_by_test_id("node-send1").click()
    assert panel.get_by_test_id("field-next").input_value() == "exit"
    shot(page, "builder")

    # A step nobody can reach is refused at save, and shown at the step.
    page.get_by_test_id("node-exit").click()
    page.get_by_test_id("add-tag").click()
    page.get_by_test_id("save-draft").click()
    problems = page.get_by_test_id("problems")
    problems.wait_for(state="visible")
    assert "tag1" in problems.inner_text()
    assert "problem" in page.get_by_test_id("node-tag1").get_attribute("class")
    assert "cannot be reached" in panel.get_by_test_id("step-problem").inner_text()
    panel.get_by_test_id("delete-step").click()
    page.get_by_test_id("validate").click()
    status = "() => document.querySelector('[data-testid=builder-status]').textContent.includes('No problems')"
    page.wait_for_function(status)
    page.get_by_test_id("publish").click()
    page.wait_for_function("() => document.querySelector('[data-testid=journey-status]').textContent.trim() === 'Live'")
    assert page.url == url

    page.get_by_test_id("enroll-ids").fill(", ".join(map(str, ids)))
    page.get_by_test_id("enroll-submit").click()
    page.get_by_test_id("notice").wait_for()
    while run_once(db, worker="browser-test").pumped:
        pass
    # The diagram polls its counts: the send step fills without a reload.
    filled = "() => document.querySelector(\"[data-testid='counts-send1']\").textContent.startsWith('Entered 3')"
    page.wait_for_function(filled, timeout=15_000)
    assert page.locator("[data-step-row=send1] [data-count=entered]").inner_text() == "3"
    shot(page, "builder-counts")

    page.get_by_test_id("journey-stats-link").click()
    page.wait_for_url(re.compile(r".*/stats$"))
    page.wait_for_selector("[data-testid=funnel-chart][data-drawn=true]")
    page.wait_for_selector("[data-testid=sankey-chart][data-drawn=true]")
    entered = page.locator("[data-testid=funnel-table] [data-count=entered]").all_inner_texts()
    assert entered == ["3", "3", "3"]
    assert page.get_by_test_id("total-enrolled").inner_text() == "3"
    shot(page, "stats")

    # On a phone the builder still reads: nothing runs off sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(url)
    page.get_by_test_id("node-send1").wait_for()
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    shot(page, "builder-phone")
