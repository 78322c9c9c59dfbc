"""The duplicate review in the UI: scan in the background, compare a pair side by side, pick values, merge."""

from __future__ import annotations

import datetime as dt
import os
import re

import pytest
from sqlalchemy import select

from kizuna.auth.models import AuditEntry
from kizuna.customers.models import Customer, DuplicatePair
from kizuna.db import new_session, transaction
from kizuna.outbox.worker import run_once
from tests import factories
from tests.web.conftest import csrf_of

BORN = dt.date(1985, 4, 1)
SCREENSHOTS = os.environ.get("KIZUNA_UI_SCREENSHOTS")  # a folder: save screenshots of the pair page there


def seed_pair(db) -> tuple[int, int]:  # noqa: ANN001
    """Two records of one person (same reading and birth date, different kanji), no pair stored yet."""
    with transaction(db) as s:
        a = factories.customer(s, family_name="斎藤", given_name="誠", family_name_kana="サイトウ",
                               given_name_kana="マコト", birth_date=BORN, email="makoto@example.jp",
                               phone="03-1111-2222", postal_code="150-0001", prefecture="東京都", city="渋谷区",
                               address_line="神宮前1-2-3", tags=["VIP"])  # fmt: skip
        b = factories.customer(s, family_name="斉藤", given_name="誠", family_name_kana="さいとう",
                               given_name_kana="まこと", birth_date=BORN, email="makoto.saito@example.com",
                               phone="090-5555-6666", postal_code="530-0001", prefecture="大阪府", city="大阪市北区",
                               address_line="梅田1-1-1", tags=["store"])  # fmt: skip
        return a.id, b.id


def scan_through_the_worker(client, db) -> None:  # noqa: ANN001
    page = client.get("/customers/duplicates")
    r = client.post("/customers/duplicates/scan", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/customers/duplicates"
    assert run_once(db).done == 1


def pair_id(db, a: int, b: int) -> int:  # noqa: ANN001
    with transaction(db) as s:
        return s.scalar(
            select(DuplicatePair.id).where(DuplicatePair.customer_id == a, DuplicatePair.other_customer_id == b)
        )


def test_scan_now_runs_in_the_worker_and_the_pair_appears_with_a_japanese_reason(ui_client, db):
    a, b = seed_pair(db)
    client = ui_client("manager")
    before = client.get("/customers/duplicates")
    assert before.status_code == 200 and "まだ検出を実行していません" in before.text
    page = client.get("/customers/duplicates")
    client.post("/customers/duplicates/scan", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    waiting = client.get("/customers/duplicates")
    assert 'data-testid="scan-waiting"' in waiting.text and 'data-testid="pair-row"' not in waiting.text
    assert run_once(db).done == 1
    after = client.get("/customers/duplicates")
    assert "前回の検出" in after.text and "新規 1 組" in after.text
    assert after.text.count('data-testid="pair-row"') == 1
    assert "フリガナと生年月日が同じ" in after.text and "kana_birth" not in after.text
    assert f'href="/customers/duplicates/{pair_id(db, a, b)}"' in after.text


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_every_field_a_merge_can_pick_and_every_rule_has_a_label(lang):
    from kizuna.customers.duplicate_scan import RULE_NAMES, rules
    from kizuna.customers.merge import KEEP_GROUPS
    from kizuna.web.i18n import catalog

    texts = catalog(lang)
    assert [r.name for r in rules("sqlite")] == list(RULE_NAMES)
    missing = [f"duplicate_field.{g}" for g in KEEP_GROUPS if f"duplicate_field.{g}" not in texts]
    missing += [f"duplicates.reason.{r}" for r in RULE_NAMES if f"duplicates.reason.{r}" not in texts]
    missing += [
        f"duplicate_status.{s}" for s in ("open", "dismissed", "merged") if f"duplicate_status.{s}" not in texts
    ]
    assert missing == []


def test_the_review_is_for_roles_that_may_merge(ui_client, db):
    assert ui_client("sales").get("/customers/duplicates").status_code == 403
    viewer = ui_client("viewer")
    assert 'data-testid="nav-duplicates"' not in viewer.get("/customers").text
    assert 'data-testid="nav-duplicates"' in ui_client("manager").get("/customers").text


def test_compare_page_shows_both_customers_side_by_side_in_english(ui_client, db):
    a, b = seed_pair(db)
    client = ui_client("manager")
    scan_through_the_worker(client, db)
    client.cookies.set("kizuna_lang", "en")
    page = client.get(f"/customers/duplicates/{pair_id(db, a, b)}")
    assert page.status_code == 200
    html = page.text
    for text in ("same kana reading and birth date", "斎藤 誠", "斉藤 誠", "makoto.saito@example.com", "03-1111-2222",
                 "090-5555-6666", "〒150-0001 東京都渋谷区神宮前1-2-3", "VIP", "store", "0 orders"):  # fmt: skip
        assert text in html, text
    # A radio per differing value; the reading and birth date are the same, so there is nothing to pick.
    assert f'name="pick_email" value="{b}"' in html and f'name="pick_address" value="{a}"' in html
    assert 'name="pick_name_kana"' not in html and 'name="pick_birth_date"' not in html


def test_merge_from_the_pair_page_applies_the_picked_values_and_audits_them(ui_client, db):
    a, b = seed_pair(db)
    client = ui_client("manager")
    scan_through_the_worker(client, db)
    pid = pair_id(db, a, b)
    page = client.get(f"/customers/duplicates/{pid}")
    form = {
        "csrf_token": csrf_of(page.text),
        "survivor": str(b),
        "pick_name": str(a),
        "pick_email": str(b),
        "pick_phone": str(a),
        "pick_address": str(b),
        "confirm": "yes",
        **{name: value for name, value in re.findall(r'name="(version_\d+)" value="(\d+)"', page.text)},
    }
    r = client.post(f"/customers/duplicates/{pid}/merge", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/customers/{b}"
    with transaction(db) as s:
        survivor, merged = s.get(Customer, b), s.get(Customer, a)
        assert (survivor.full_name, survivor.email, survivor.phone) == ("斎藤 誠", "makoto.saito@example.com",
                                                                        "+81311112222")  # fmt: skip
        assert survivor.city == "大阪市北区" and sorted(t.name for t in survivor.tags) == ["VIP", "store"]
        assert (merged.status, merged.merged_into_id) == ("merged", b)
        assert s.get(DuplicatePair, pid).status == "merged"
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "customer.merge"))
        assert entry.actor == "manager-0@example.com"
        assert entry.details["kept"]["name"] == {"from": "merged", "family_name": "斎藤", "given_name": "誠"}
        assert entry.details["kept"]["email"]["from"] == "survivor"
    # The old id leads to the survivor.
    old = client.get(f"/customers/{a}", follow_redirects=False)
    assert old.status_code == 302 and old.headers["location"] == f"/customers/{b}"


def test_merge_without_the_confirmation_is_refused_next_to_the_box_and_changes_nothing(ui_client, db):
    a, b = seed_pair(db)
    client = ui_client("manager")
    scan_through_the_worker(client, db)
    pid = pair_id(db, a, b)
    page = client.get(f"/customers/duplicates/{pid}")
    r = client.post(
        f"/customers/duplicates/{pid}/merge",
        data={"csrf_token": csrf_of(page.text), "survivor": str(a), "pick_email": str(b)},
    )
    assert r.status_code == 422
    assert 'data-testid="error-confirm"' in r.text and "同一人物であることを確認してチェック" in r.text
    assert f'name="pick_email" value="{b}" checked' in r.text  # what the user picked is kept
    with transaction(db) as s:
        assert s.get(Customer, b).status == "active" and s.get(DuplicatePair, pid).status == "open"


def test_merge_of_a_record_changed_meanwhile_shows_the_new_values_and_merges_nothing(ui_client, db):
    a, b = seed_pair(db)
    client = ui_client("manager")
    scan_through_the_worker(client, db)
    pid = pair_id(db, a, b)
    page = client.get(f"/customers/duplicates/{pid}")
    with transaction(db) as s:
        s.get(Customer, b).city = "堺市"
    form = {"csrf_token": csrf_of(page.text), "survivor": str(a), "confirm": "yes",
            **dict(re.findall(r'name="(pick_\w+)" value="(\d+)" checked', page.text)),
            **dict(re.findall(r'name="(version_\d+)" value="(\d+)"', page.text))}  # fmt: skip
    r = client.post(f"/customers/duplicates/{pid}/merge", data=form)
    assert r.status_code == 409
    assert 'data-testid="stale"' in r.text and "堺市" in r.text
    with transaction(db) as s:
        assert s.get(Customer, b).status == "active"


def test_dismiss_closes_the_pair_and_a_new_scan_does_not_bring_it_back(ui_client, db):
    a, b = seed_pair(db)
    client = ui_client("manager")
    scan_through_the_worker(client, db)
    pid = pair_id(db, a, b)
    page = client.get("/customers/duplicates")
    r = client.post(f"/customers/duplicates/{pid}/dismiss", data={"csrf_token": csrf_of(page.text)},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    scan_through_the_worker(client, db)
    after = client.get("/customers/duplicates")
    assert 'data-testid="pair-row"' not in after.text and "新規 0 組" in after.text
    closed = client.get(f"/customers/duplicates/{pid}")
    assert 'data-testid="pair-closed"' in closed.text and 'data-testid="merge"' not in closed.text


def test_the_360_page_links_a_possible_duplicate_to_its_comparison(ui_client, db):
    a, b = seed_pair(db)
    client = ui_client("manager")
    scan_through_the_worker(client, db)
    page = client.get(f"/customers/{a}")
    assert f'href="/customers/duplicates/{pair_id(db, a, b)}"' in page.text
    assert "フリガナと生年月日が同じ" in page.text


@pytest.mark.browser
def test_review_compare_pick_and_merge_in_japanese(sign_in, live_server, db):
    a, b = seed_pair(db)
    page = sign_in("manager")
    page.click('[data-testid="nav-duplicates"]')
    page.wait_for_url(re.compile(r".*/customers/duplicates$"))
    page.click('[data-testid="scan-now"]')
    page.wait_for_selector('[data-testid="scan-waiting"]')
    assert run_once(db).done == 1
    page.reload()
    row = page.locator('[data-testid="pair-row"]')
    assert row.count() == 1 and "フリガナと生年月日が同じ" in row.inner_text()
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/duplicates.png", full_page=True)
    row.locator('[data-testid="compare"]').click()
    page.wait_for_selector('[data-testid="merge-form"]')
    assert "重複候補の比較" in page.inner_text("h1")
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/duplicate-pair.png", full_page=True)
        page.set_viewport_size({"width": 390, "height": 800})
        page.screenshot(path=f"{SCREENSHOTS}/duplicate-pair-390.png", full_page=True)
        page.set_viewport_size({"width": 1280, "height": 800})
    page.check(f'[data-testid="survivor-{a}"]')
    page.check(f'[data-testid="pick_email-{b}"]')
    page.check(f'[data-testid="pick_address-{b}"]')
    page.check('[data-testid="confirm"]')
    page.click('[data-testid="merge"]')
    page.wait_for_url(re.compile(rf".*/customers/{a}$"))
    attributes = page.inner_text('[data-testid="attributes"]')
    assert "makoto.saito@example.com" in attributes and "大阪市北区" in attributes
    assert f"#{b}" in page.inner_text('[data-testid="merged-ids"]')
    page.goto(f"{live_server}/customers/{b}")
    page.wait_for_url(re.compile(rf".*/customers/{a}$"))
    # Nothing overflows sideways on a phone.
    page.set_viewport_size({"width": 390, "height": 800})
    for path in ("/customers/duplicates", f"/customers/duplicates/{pair_id(db, a, b)}"):
        page.goto(f"{live_server}{path}")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    with new_session(db) as s:
        assert s.get(DuplicatePair, pair_id(db, a, b)).status == "merged"
