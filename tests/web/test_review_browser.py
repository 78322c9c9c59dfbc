"""Review findings that only a real browser shows (layout at phone width)."""

from __future__ import annotations

import pytest

from kizuna.db import transaction
from tests import factories

pytestmark = pytest.mark.browser


def test_customer_list_on_a_phone_keeps_names_readable_and_no_column_cut_off(sign_in, live_server, db):
    with transaction(db) as s:
        factories.customer(
            s,
            family_name="山崎",
            given_name="裕美子",
            email="yumiko.yamazaki498@hotmail.example.com",
            phone="070-7072-1529",
        )
    page = sign_in("marketer")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server}/customers")
    name_width = page.locator("td.name-cell").first.evaluate("e => e.getBoundingClientRect().width")
    assert name_width >= 60, f"the name column is squeezed to {name_width}px"
    # Columns past the card's edge scroll inside it rather than being clipped out of reach.
    card = page.locator(".table-card").first
    assert card.evaluate("e => getComputedStyle(e).overflowX") == "auto"
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0


def test_the_merge_confirmation_checkbox_sits_beside_its_words(sign_in, live_server, db):
    from kizuna.customers import duplicates
    from tests.web.test_duplicates_ui import pair_id, seed_pair

    a, b = seed_pair(db)
    with transaction(db) as s:
        duplicates.propose(s, a, b, "kana_birth")
    page = sign_in("admin")
    page.goto(f"{live_server}/customers/duplicates/{pair_id(db, a, b)}")
    box = page.get_by_test_id("confirm").bounding_box()
    words = page.locator(".dup-confirm label").bounding_box()
    assert box and words and box["width"] < 40, box
    assert box["x"] - words["x"] < 10, "the checkbox should start its label, not float mid-page"
