"""The kanban board in a real Chromium: a card dragged to the next stage stays there after a reload; the
keyboard menu moves a card too; a stale card says so and comes back; the sales pages fit a 390px phone in
both languages and pass axe-core."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from kizuna.auth.models import User
from kizuna.db import transaction
from kizuna.sales import deals, pipelines
from kizuna.sales.models import Deal
from kizuna.sales.schemas import DealCreate, DealUpdate
from tests import factories
from tests.phone import phone_problems

pytestmark = pytest.mark.browser


def _seed(db, owner_email: str) -> dict:  # noqa: ANN001
    with transaction(db) as s:
        owner = s.scalar(select(User).where(User.email == owner_email))
        customer = factories.customer(s, family_name="高橋", given_name="健")
        stages = pipelines.stages_of(s, pipelines.default_pipeline(s).id)
        made = [
            deals.create_deal(
                s,
                actor=factories.SYSTEM,
                data=DealCreate(
                    name=name,
                    customer_id=customer.id,
                    amount=amount,
                    owner_id=owner.id,
                    expected_close_date=dt.date(2030, 1, day),
                ),
            )  # fmt: skip
            for name, amount, day in (("ドラッグ案件", 1_000_000, 10), ("メニュー案件", 200_000, 20))
        ]
        s.flush()
        return {"deals": [d.id for d in made], "stages": [x.id for x in stages], "customer": customer.id}


def _column(page, stage_id: int):  # noqa: ANN001, ANN202
    return page.locator(f'.board-column[data-stage="{stage_id}"]')


@pytest.mark.both_backends
def test_drag_a_card_to_the_next_stage_and_it_persists(live_server, sign_in, db):
    page = sign_in("sales", "rep@example.com")
    ids = _seed(db, "rep@example.com")
    page.goto(f"{live_server}/deals/board")
    card = page.locator(f"#deal-{ids['deals'][0]}")
    target = _column(page, ids["stages"][1])
    card.drag_to(target)
    page.wait_for_function(
        "id => document.querySelector(`.board-column[data-stage=\"${id}\"] .col-count`).textContent === '1'",
        arg=ids["stages"][1],
    )
    assert target.locator(".deal-card").count() == 1
    page.reload()
    assert _column(page, ids["stages"][1]).locator(f"#deal-{ids['deals'][0]}").count() == 1
    assert _column(page, ids["stages"][0]).locator(".col-count").inner_text() == "1"
    with transaction(db) as s:
        assert s.get(Deal, ids["deals"][0]).stage_id == ids["stages"][1]

    # The keyboard way: the card's Move menu, a select and a button.
    menu_card = page.locator(f"#deal-{ids['deals'][1]}")
    menu_card.locator("summary").focus()
    page.keyboard.press("Enter")
    menu_card.locator("select").select_option(str(ids["stages"][2]))
    menu_card.get_by_role("button").click()
    page.wait_for_load_state()
    assert _column(page, ids["stages"][2]).locator(f"#deal-{ids['deals'][1]}").count() == 1

    # Someone else changes the dragged deal meanwhile: the drop is refused with a message, the card comes back.
    with transaction(db) as s:
        deals.update_deal(
            s, actor=factories.SYSTEM, deal_id=ids["deals"][0], data=DealUpdate(amount=5), expected_version=None
        )
    page.locator(f"#deal-{ids['deals'][0]}").drag_to(_column(page, ids["stages"][3]))
    message = page.get_by_test_id("board-message")
    message.wait_for(state="visible")
    assert "他の人が先に変更しました" in message.inner_text()
    assert _column(page, ids["stages"][1]).locator(f"#deal-{ids['deals'][0]}").count() == 1
    with transaction(db) as s:
        assert s.get(Deal, ids["deals"][0]).stage_id == ids["stages"][1]


def test_sales_pages_fit_a_phone_and_pass_axe_in_both_languages(live_server, sign_in, db):
    page = sign_in("sales", "rep@example.com")
    ids = _seed(db, "rep@example.com")
    # A card in a column beyond the phone's width: its menu's hidden text must not widen the page.
    with transaction(db) as s:
        deals.move_deal(s, actor=factories.SYSTEM, deal_id=ids["deals"][0], stage_id=ids["stages"][3])
    paths = [
        "/home",
        "/deals/board",
        "/deals",
        "/deals/new",
        f"/deals/{ids['deals'][0]}",
        f"/customers/{ids['customer']}",
    ]
    problems = phone_problems(page, live_server, paths)
    assert not problems, "\n".join(problems)
