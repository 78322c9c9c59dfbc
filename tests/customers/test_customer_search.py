"""The customer search box and the name sort, as the API list, the UI list and exports get them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kizuna.customers.filters import CUSTOMER_FILTERS
from kizuna.customers.models import Customer
from kizuna.imports.runner import run_import
from kizuna.listing import list_page
from tests import factories


def _ids(session, q: str) -> set[int]:
    rows, _ = list_page(session, CUSTOMER_FILTERS, CUSTOMER_FILTERS.select(), {"q": q}, limit=100)
    return {c.id for c in rows}


def test_a_name_typed_without_a_space_is_found(session):
    mitsuru = factories.customer(
        session, family_name="山田", given_name="充", family_name_kana="ヤマダ", given_name_kana="ミツル"
    )
    other = factories.customer(session, family_name="山本", given_name="充", family_name_kana="ヤマモト")
    session.commit()
    for typed in ("山田充", "山田 充", "山田　充", "山田", "ヤマダミツル", "ヤマダ ミツル", "やまだみつる", "ﾔﾏﾀﾞﾐﾂﾙ"):
        assert _ids(session, typed) == {mitsuru.id}, typed
    assert _ids(session, "山") == {mitsuru.id, other.id}
    assert _ids(session, "山田太郎") == set()


def test_a_latin_name_is_found_from_its_start_whatever_the_case_and_spaces(session):
    ann = factories.customer(session, family_name="Smith", given_name="Ann", email="ann@example.com")
    session.commit()
    for typed in ("Ann Smith", "annsmith", "ANN", "ａｎｎ ｓｍｉｔｈ", "ann@EXAMPLE"):
        assert _ids(session, typed) == {ann.id}, typed


def test_search_finds_email_phone_and_external_id_from_their_start(session):
    c = factories.customer(session, email="hanako@example.jp", phone="090-1234-5678", external_id="EXT-9")
    session.commit()
    for typed in ("hanako@", "090-1234", "09012345678", "+81 90 1234", "EXT-9"):
        assert _ids(session, typed) == {c.id}, typed
    assert _ids(session, "EXT") == set()  # the external id is matched whole


def test_name_keys_are_kept_by_update_and_import(session, db, tmp_path):
    c = factories.customer(session, family_name="山田", given_name="充")
    session.commit()
    from kizuna.customers import service
    from kizuna.customers.schemas import CustomerUpdate

    service.update_customer(
        session,
        actor=factories.SYSTEM,
        customer_id=c.id,
        data=CustomerUpdate(family_name="川田", family_name_kana="かわだ", given_name_kana="みつる"),
        expected_version=None,
    )
    session.commit()
    assert _ids(session, "川田充") == {c.id} and _ids(session, "カワダミツル") == {c.id}
    assert _ids(session, "山田充") == set()
    path = tmp_path / "people.csv"
    path.write_text("姓,名,セイ,メイ,メールアドレス\n鈴木,一郎,すずき,いちろう,ichiro@example.jp\n", encoding="utf-8")
    assert run_import(db, "customers", path, actor=factories.SYSTEM).inserted == 1
    session.expire_all()
    imported = session.scalar(select(Customer.id).where(Customer.email == "ichiro@example.jp"))
    assert _ids(session, "鈴木一郎") == {imported} and _ids(session, "スズキイチロウ") == {imported}


def _names(session, sort: str, limit: int = 100) -> list[str]:
    rows, _ = list_page(session, CUSTOMER_FILTERS, CUSTOMER_FILTERS.select(), {}, sort=sort, limit=limit)
    return [c.full_name for c in rows]


def test_name_sort_is_gojuon_order_of_the_reading_and_people_without_one_come_last(session):
    # Code-point order of the names would be 伊藤 < 佐藤 < 渡辺 < 鈴木; the readings say イ, サ, ス, ワ.
    for family, kana in (("鈴木", "すずき"), ("渡辺", "わたなべ"), ("伊藤", "いとう"), ("佐藤", "さとう")):
        factories.customer(
            session, family_name=family, given_name="花子", family_name_kana=kana, given_name_kana="はなこ"
        )
    factories.customer(session, family_name="Brown", given_name="Zoe")
    factories.customer(session, family_name="Adams", given_name="amy")
    session.commit()
    ascending = ["伊藤 花子", "佐藤 花子", "鈴木 花子", "渡辺 花子", "amy Adams", "Zoe Brown"]
    assert _names(session, "full_name") == ascending
    assert _names(session, "-full_name") == ascending[::-1]


@pytest.mark.parametrize("sort", ["full_name", "-full_name"])
def test_name_sort_pages_through_every_customer_once(session, sort):
    for n in range(7):
        factories.customer(session, family_name="佐藤", given_name=f"花子{n % 3}", family_name_kana="さとう")
    session.commit()
    seen, cursor = [], None
    while True:
        rows, cursor = list_page(
            session, CUSTOMER_FILTERS, CUSTOMER_FILTERS.select(), {}, sort=sort, cursor=cursor, limit=3
        )
        seen += [c.id for c in rows]
        if not cursor:
            break
    assert sorted(seen) == sorted(session.scalars(select(Customer.id))) and len(seen) == len(set(seen))
