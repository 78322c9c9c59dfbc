"""Paging both ways and capped counts (kizuna.listing), on every sort order of the customer list."""

from __future__ import annotations

import pytest

from kizuna.customers.filters import CUSTOMER_FILTERS
from kizuna.errors import ValidationError
from kizuna.listing import list_window
from kizuna.listing_count import count_rows
from tests import factories

SORTS = ["id", "-id", "full_name", "-full_name", "created_at", "-created_at", "updated_at"]


@pytest.fixture
def eleven(session):
    # Repeated names: the sort value ties and the id must break them, both ways.
    for n in range(11):
        factories.customer(session, family_name="佐藤", given_name=f"花子{n % 4}", family_name_kana="さとう")
    session.commit()


def _window(session, sort, cursor=None, limit=3, params=None):
    return list_window(
        session, CUSTOMER_FILTERS, CUSTOMER_FILTERS.select(), params or {}, sort=sort, cursor=cursor, limit=limit
    )


@pytest.mark.parametrize("sort", SORTS)
def test_previous_pages_are_the_next_pages_walked_back(session, eleven, sort):
    pages, cursors = [], []
    w = _window(session, sort)
    assert w.prev_cursor is None
    while True:
        pages.append([c.id for c in w.rows])
        if not w.next_cursor:
            break
        cursors.append(w.next_cursor)
        w = _window(session, sort, w.next_cursor)
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    assert len({i for p in pages for i in p}) == 11
    # From the last page back to the first, by the previous links only.
    back = [pages[-1]]
    while w.prev_cursor:
        w = _window(session, sort, w.prev_cursor)
        back.append([c.id for c in w.rows])
        # Going back, the next link leads forward again to the page just left.
        assert [c.id for c in _window(session, sort, w.next_cursor).rows] == back[-2]
    assert back[::-1] == pages


def test_a_cursor_of_another_sort_or_a_forged_direction_is_refused(session, eleven):
    w = _window(session, "id")
    with pytest.raises(ValidationError):
        _window(session, "full_name", w.next_cursor)
    import base64
    import json

    forged = base64.urlsafe_b64encode(json.dumps(["id", "5", 5, ">"]).encode()).decode().rstrip("=")
    with pytest.raises(ValidationError):
        _window(session, "id", forged)


def test_count_is_exact_up_to_the_cap_and_says_more_beyond_it(session, eleven):
    select = CUSTOMER_FILTERS.select()
    assert count_rows(session, CUSTOMER_FILTERS, select, {}, cap=11) == (11, True)
    assert count_rows(session, CUSTOMER_FILTERS, select, {}, cap=10) == (10, False)
    assert count_rows(session, CUSTOMER_FILTERS, select, {}, cap=None) == (11, True)
    assert count_rows(session, CUSTOMER_FILTERS, select, {"q": "佐藤花子1"}, cap=10) == (3, True)


@pytest.mark.parametrize("narrow", [0, 10_000])
def test_a_search_gives_the_same_pages_whether_run_from_its_indexes_or_row_by_row(session, monkeypatch, narrow):
    from kizuna import listing

    for n in range(9):
        factories.customer(
            session, family_name="佐藤" if n % 3 else "鈴木", given_name=f"花子{n}", family_name_kana="さとう"
        )
    session.commit()
    # 0: every search counts as broad (rows tested in list order); 10,000: narrow (matches collected first).
    monkeypatch.setattr(listing, "NARROW_SEARCH", narrow)
    for sort in ("-id", "full_name", "-created_at"):
        seen, w = [], _window(session, sort, params={"q": "佐藤"})
        # Collected matches are counted on the way; tested ones are not.
        assert w.total == (6 if narrow else None)
        while True:
            seen += [c.full_name for c in w.rows]
            if not w.next_cursor:
                break
            w = _window(session, sort, w.next_cursor, params={"q": "佐藤"})
        assert sorted(seen) == sorted(f"佐藤 花子{n}" for n in range(9) if n % 3), sort


def test_a_search_count_is_exact_below_the_cap_even_when_its_indexes_give_more(session):
    for n in range(6):
        factories.customer(
            session, family_name="佐藤", given_name=f"花子{n}", lifecycle_stage="lead" if n < 2 else None
        )
    session.commit()
    select = CUSTOMER_FILTERS.select()
    assert count_rows(session, CUSTOMER_FILTERS, select, {"q": "佐藤"}, cap=3) == (3, False)
    assert count_rows(session, CUSTOMER_FILTERS, select, {"q": "佐藤"}, cap=6) == (6, True)
    assert count_rows(session, CUSTOMER_FILTERS, select, {"q": "佐藤"}, cap=None) == (6, True)
    # Six candidates from the name index, more than the cap, but only two leads among them: still exact.
    narrowed = {"q": "佐藤", "lifecycle_stage": "lead"}
    assert count_rows(session, CUSTOMER_FILTERS, select, narrowed, cap=3) == (2, True)


def test_a_tag_count_from_the_tag_index_matches_the_rows_tested_one_by_one(session):
    for n in range(5):
        factories.customer(session, email=f"t{n}@example.com", tags=["vip"] if n % 2 else ["new"])
    session.commit()
    select = CUSTOMER_FILTERS.select()
    for params in ({"tag": "vip"}, {"tag__in": "vip,new"}, {"tag__ne": "vip"}, {"tag": "none"}):
        rows = list_window(session, CUSTOMER_FILTERS, select, params, limit=50).rows
        assert count_rows(session, CUSTOMER_FILTERS, select, params) == (len(rows), True), params


def test_a_customer_found_by_name_and_by_email_is_counted_once(session):
    factories.customer(session, family_name="Smith", given_name="Ann", email="ann@example.com")
    factories.customer(session, family_name="Lee", given_name="Bo", email="ann.lee@example.com")
    session.commit()
    select = CUSTOMER_FILTERS.select()
    for cap in (10, None):
        assert count_rows(session, CUSTOMER_FILTERS, select, {"q": "ann"}, cap=cap) == (2, True)
    assert _window(session, "id", params={"q": "ann"}).total == 2
