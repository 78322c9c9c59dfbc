"""The call-first page in a real Chromium: a rep sees the scored deals and leads best first with the reasons
beside each, the page fits a 390px phone in both languages and passes axe-core, and so does the scoring page
with a trained model's calibration table and a manager's rules form."""

from __future__ import annotations

import pytest

from kizuna.db import transaction
from kizuna.sales.scoring import service
from tests import factories
from tests.phone import phone_problems
from tests.sales.scoring_history import seed_history

pytestmark = pytest.mark.browser


def _problems(page, live_server: str, paths: list[str]) -> list[str]:  # noqa: ANN001
    return phone_problems(page, live_server, paths)


def test_call_first_page_lists_the_best_first_with_reasons(live_server, sign_in, db):
    ids = seed_history(db, closed=80, open_deals=3, leads=2)
    with transaction(db) as s:
        service.train(s, actor=factories.SYSTEM)
    page = sign_in("sales", "rep@example.com")
    page.goto(f"{live_server}/deals/board")
    page.get_by_test_id("tab-call-first").click()
    page.wait_for_url(f"{live_server}/sales/call-first")
    rows = page.get_by_test_id("call-first-row")
    assert rows.count() == 5
    first = rows.nth(0)
    assert first.locator(f'a[href="/deals/{ids["open"][0]}"]').count() == 1
    assert "打合せ = 4" in first.inner_text()
    # The rep may read the model's quality but has no train button.
    page.goto(f"{live_server}/sales/scoring")
    assert page.get_by_test_id("scoring-auc-deal").is_visible()
    assert page.get_by_test_id("scoring-train").count() == 0
    assert not _problems(page, live_server, ["/sales/call-first", "/sales/scoring"])


def test_manager_scoring_page_fits_a_phone_and_passes_axe(live_server, sign_in, db):
    seed_history(db, closed=60, open_deals=1, leads=1)
    page = sign_in("manager", "boss@example.com")
    page.goto(f"{live_server}/sales/scoring")
    page.get_by_test_id("scoring-train").click()
    page.get_by_test_id("scoring-trained").wait_for()
    problems = _problems(page, live_server, ["/sales/scoring", "/sales/call-first"])
    assert not problems, "\n".join(problems)
