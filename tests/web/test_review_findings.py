"""Defects met while walking the Japanese UI as a new marketing user (review of 2026-11-27), each pinned."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import kizuna.web
from kizuna.db import transaction
from tests import factories
from tests.web.conftest import csrf_of

CSS = Path(kizuna.web.__file__).parent / "static" / "kizuna.css"


def _without_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def test_the_stylesheet_closes_every_block_so_later_sections_apply_on_desktop():
    # An unclosed @media block once swallowed every section after it: the 360 summary, the column picker and the
    # analytics grid were styled only below 600 px.
    depth = 0
    for line_no, line in enumerate(_without_comments(CSS.read_text(encoding="utf-8")).splitlines(), 1):
        depth += line.count("{") - line.count("}")
        assert depth >= 0, f"a stray closing brace at line {line_no}"
    assert depth == 0


def test_each_area_section_of_the_stylesheet_starts_at_top_level():
    text = CSS.read_text(encoding="utf-8")
    for match in re.finditer(r"/\* === (.+?) === \*/", text):
        before = _without_comments(text[: match.start()])
        assert before.count("{") == before.count("}"), f"section {match.group(1)!r} starts inside an open block"


def test_adding_an_email_another_customer_holds_says_so_in_japanese_next_to_the_field(ui_client, db):
    with transaction(db) as s:
        holder = factories.customer(s, family_name="甲", email="taken@example.jp").id
        other = factories.customer(s, family_name="乙").id
    c = ui_client("marketer")
    csrf = csrf_of(c.get(f"/customers/{other}").text)
    r = c.post(
        f"/customers/{other}/identities", data={"csrf_token": csrf, "kind": "email", "value": "taken@example.jp"}
    )
    assert r.status_code == 422
    assert f"「taken@example.jp」はすでに顧客 #{holder} に登録されています。" in r.text
    assert "already belongs" not in r.text


def test_the_bulk_bar_runs_with_its_own_button_and_a_new_outcome_replaces_the_old_one(ui_client, db):
    with transaction(db) as s:
        ids = [factories.customer(s, family_name="一").id]
    c = ui_client("marketer")
    page = c.get("/customers").text
    assert re.search(r'data-testid="bulk-apply">実行<', page)
    back = "/customers?q=%E4%B8%80&bulk_error=old&bulk_done=9"
    r = c.post(
        "/customers/bulk",
        data={"csrf_token": csrf_of(page), "ids": [str(i) for i in ids], "action": "tag_add", "back": back},
        follow_redirects=False,
    )
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query == {"q": ["一"], "bulk_error": ["bulk_tag_missing"]}
    r = c.post(
        "/customers/bulk",
        data={
            "csrf_token": csrf_of(page),
            "ids": [str(i) for i in ids],
            "action": "tag_add",
            "tag": "秋",
            "back": back,
        },
        follow_redirects=False,
    )
    assert parse_qs(urlsplit(r.headers["location"]).query) == {"q": ["一"], "bulk_done": ["1"]}


def test_the_merge_page_shows_where_each_record_came_from_in_japanese(ui_client, db):
    from tests.web.test_duplicates_ui import pair_id, scan_through_the_worker

    with transaction(db) as s:
        a = factories.customer(s, family_name="山本", given_name="京助", phone="03-8128-5951", source="web").id
        b = factories.customer(s, family_name="山本", given_name="京助", phone="03-8128-5951", source="store").id
    c = ui_client("admin")
    scan_through_the_worker(c, db)
    page = c.get(f"/customers/duplicates/{pair_id(db, a, b)}").text
    row = re.search(r'data-testid="field-source">(.*?)</tr>', page, flags=re.S)
    assert row, "the source row is missing"
    assert "Webサイト" in row.group(1) and "店舗" in row.group(1)
    assert ">web<" not in row.group(1)


def test_the_import_mapping_lists_fields_in_the_importers_order_not_by_code():
    from kizuna.imports import jobs

    choices = jobs.field_choices("customers")
    assert choices.index("family_name") < choices.index("given_name") < choices.index("family_name_kana")
    assert choices.index("postal_code") < choices.index("prefecture") < choices.index("city")
    assert len(choices) == len(set(choices))


def test_every_page_names_an_icon_that_exists_so_the_browser_logs_no_404(ui_client):
    c = ui_client("viewer")
    href = re.search(r'<link rel="icon" href="([^"]+)"', c.get("/customers").text)
    assert href, "no icon link"
    r = c.get(href.group(1))
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg")


def _audited_codes() -> tuple[set[str], set[str]]:
    """The audit actions and entity types the code writes: literals, plus the kinds the f-strings expand over."""
    from kizuna.exports.service import KINDS as EXPORT_KINDS
    from kizuna.imports.runner import KINDS as IMPORT_KINDS

    source = "\n".join(p.read_text(encoding="utf-8") for p in Path(kizuna.web.__file__).parents[1].rglob("*.py"))
    actions = set(re.findall(r'\baction="([a-z_]+\.[a-z_]+)"', source))
    entities = set(re.findall(r'\bentity_type="([a-z_]+)"', source))
    actions |= {f"export.{k}" for k in EXPORT_KINDS} | {f"import.{k}" for k in IMPORT_KINDS}
    actions |= {"consent.granted", "consent.withdrawn"}
    entities |= set(EXPORT_KINDS)
    return actions, entities


def test_every_audit_action_and_record_type_the_code_writes_has_a_label_in_both_languages():
    from kizuna.web.i18n import catalog

    actions, entities = _audited_codes()
    assert "import.run" in actions and "saved_view" in entities  # the scan finds what it should
    for lang in ("ja", "en"):
        texts = catalog(lang)
        missing = sorted(f"audit_action.{a}" for a in actions if f"audit_action.{a}" not in texts)
        missing += sorted(f"audit_entity.{e}" for e in entities if f"audit_entity.{e}" not in texts)
        assert not missing, f"{lang}: the audit log would show raw codes for {missing}"


def test_an_opt_out_on_the_timeline_is_not_drawn_with_the_green_check(ui_client, db):
    customer_id = a_customer(db)
    c = ui_client("admin")
    csrf = csrf_of(c.get(f"/customers/{customer_id}").text)
    r = c.post(
        f"/customers/{customer_id}/consents",
        data={
            "csrf_token": csrf,
            "channel": "email",
            "purpose": "newsletter",
            "status": "withdrawn",
            "method": "phone",
            "evidence": "電話で配信停止のご依頼",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    page = c.get(f"/customers/{customer_id}").text
    item = re.search(r'<li class="tl-item tl-consent[^"]*"[^>]*>\s*<span class="tl-icon"[^>]*>(.)</span>', page)
    assert item and "tl-consent-withdrawn" in item.group(0) and item.group(1) == "✕"


def a_customer(db) -> int:  # noqa: ANN001
    with transaction(db) as s:
        return factories.customer(s).id


def test_exporting_the_checked_rows_with_none_checked_downloads_nothing_and_says_why(ui_client, db):
    a_customer(db)
    c = ui_client("admin")
    page = c.get("/customers?q=%E5%B1%B1").text
    assert 'name="selected_only" value="1"' in page
    r = c.post(
        "/customers/export.csv",
        data={"csrf_token": csrf_of(page), "selected_only": "1", "back": "/customers?q=%E5%B1%B1"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert parse_qs(urlsplit(r.headers["location"]).query) == {
        "q": ["山"],
        "bulk_error": ["no_selection"],
    }
    # The page head's export (the whole filtered list) is unchanged.
    r = c.post("/customers/export.csv", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")


def test_the_search_box_finds_a_customer_by_the_number_the_ui_shows(ui_client, db):
    with transaction(db) as s:
        wanted = factories.customer(s, family_name="番号", given_name="検索").id
        factories.customer(s, family_name="別人")
    c = ui_client("viewer")
    for typed in (str(wanted), f"#{wanted}", f"＃{wanted}"):
        page = c.get("/customers", params={"q": typed}).text
        assert "全1件" in page and "番号 検索" in page, typed


def test_the_number_search_also_works_when_tested_row_by_row_on_both_backends(db):
    from sqlalchemy import or_, select

    from kizuna.customers.filters import _search_clauses
    from kizuna.customers.models import Customer
    from kizuna.db import new_session

    with transaction(db) as s:
        wanted = factories.customer(s, family_name="行").id
    s = new_session(db)
    try:
        tested = or_(*(clause.tested() for clause in _search_clauses(f"#{wanted}")))
        assert list(s.scalars(select(Customer.id).where(tested))) == [wanted]
    finally:
        s.close()


def test_a_long_number_is_searched_as_a_phone_not_as_a_record_number(db):
    from kizuna.customers.filters import _search_clauses
    from kizuna.customers.models import Customer

    for typed in ("09012345678", "99999999999", "#0"):
        assert all(clause.column is not Customer.id for clause in _search_clauses(typed)), typed
