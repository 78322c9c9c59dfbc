"""The customer and company lists over HTTP: counts, paging both ways, page sizes, columns, saved views."""

from __future__ import annotations

import re

from sqlalchemy import select

from kizuna.auth.models import User
from kizuna.customers import service as customers
from kizuna.customers.schemas import CompanyCreate
from kizuna.db import transaction
from tests import factories
from tests.web.conftest import csrf_of


def _emails(html: str) -> list[str]:
    return re.findall(r"<td[^>]*>(c\d+@example\.com)</td>", html)


def _link(html: str, rel: str) -> str:
    return re.search(rf'href="([^"]*)" rel="{rel}"', html).group(1).replace("&amp;", "&")


def _seed(db, n: int) -> None:
    with transaction(db) as s:
        for i in range(n):
            factories.customer(s, email=f"c{i}@example.com", given_name=f"太郎{i}")


def test_list_shows_an_exact_count_or_more_than_the_cap_with_an_exact_count_on_demand(ui_client, db, monkeypatch):
    from kizuna.web import ui_lists

    _seed(db, 4)
    c = ui_client("viewer")
    assert "全4件" in c.get("/customers").text
    monkeypatch.setattr(ui_lists, "COUNT_CAP", 3)
    page = c.get("/customers").text
    assert "3件以上" in page and "全4件" not in page
    exact = re.search(r'href="([^"]*)" data-testid="exact-count"', page).group(1).replace("&amp;", "&")
    assert "count=exact" in exact and "全4件" in c.get(exact).text
    assert "全1件" in c.get("/customers?q=c2@").text


def test_previous_and_next_pages_with_a_chosen_page_size(ui_client, db):
    _seed(db, 60)
    c = ui_client("viewer")
    first = c.get("/customers?size=25&sort=created_at").text
    assert _emails(first) == [f"c{i}@example.com" for i in range(25)]
    assert 'rel="prev"' not in first
    second = c.get(_link(first, "next")).text
    assert _emails(second) == [f"c{i}@example.com" for i in range(25, 50)]
    third = c.get(_link(second, "next")).text
    assert _emails(third) == [f"c{i}@example.com" for i in range(50, 60)] and 'rel="next"' not in third
    back = c.get(_link(third, "prev")).text
    assert _emails(back) == _emails(second)
    assert _emails(c.get(_link(back, "prev")).text) == _emails(first)
    assert "size=25" in _link(back, "prev") and "sort=created_at" in _link(back, "prev")
    # An unknown size is the default, 50.
    assert len(_emails(c.get("/customers?size=7").text)) == 50


def test_owned_by_me_shows_only_the_viewers_customers(ui_client, db):
    c = ui_client("sales")
    with transaction(db) as s:
        me = s.scalar(select(User.id).where(User.email.like("sales-%")))
        factories.customer(s, email="c1@example.com", owner_id=me)
        factories.customer(s, email="c2@example.com")
    assert _emails(c.get("/customers?mine=1").text) == ["c1@example.com"]
    assert sorted(_emails(c.get("/customers").text)) == ["c1@example.com", "c2@example.com"]


def test_the_company_filter_is_kept_when_other_filters_change_and_can_be_removed(ui_client, db):
    with transaction(db) as s:
        co = customers.create_company(s, actor=factories.SYSTEM, data=CompanyCreate(name="株式会社テスト"))
        factories.customer(s, email="c1@example.com", company_id=co.id, lifecycle_stage="lead")
        factories.customer(s, email="c2@example.com", company_id=co.id)
        factories.customer(s, email="c3@example.com", lifecycle_stage="lead")
        company_id = co.id
    c = ui_client("viewer")
    page = c.get(f"/customers?company_id={company_id}").text
    assert 'data-testid="company-chip"' in page and "株式会社テスト" in page
    # The filter form carries the company along.
    form = page[page.index('data-testid="customer-filters"') : page.index("</form>", page.index("customer-filters"))]
    assert f'name="company_id" value="{company_id}"' in form
    narrowed = c.get(f"/customers?company_id={company_id}&lifecycle_stage=lead").text
    assert _emails(narrowed) == ["c1@example.com"]
    remove = re.search(r'href="([^"]*)"[^>]*data-testid="company-chip-remove"', narrowed).group(1).replace("&amp;", "&")
    assert "company_id" not in remove and "lifecycle_stage=lead" in remove
    assert sorted(_emails(c.get(remove).text)) == ["c1@example.com", "c3@example.com"]


def test_the_column_picker_chooses_the_columns(ui_client, db):
    _seed(db, 1)
    c = ui_client("viewer")
    default = c.get("/customers").text
    assert 'data-col="email"' in default and 'data-col="owner"' not in default
    chosen = c.get("/customers?cols=name&cols=owner&cols=lifecycle_stage").text
    assert re.findall(r'data-col="(\w+)"', chosen) == ["name", "lifecycle_stage", "owner"]
    assert "顧客" in chosen  # the stage is shown in the user's language, not as "customer"
    only_name = c.get("/customers?cols=name").text
    assert re.findall(r'data-col="(\w+)"', only_name) == ["name"]


def test_a_saved_view_is_saved_from_the_list_applied_and_deleted(ui_client, db):
    _seed(db, 3)
    c = ui_client("viewer")
    page = c.get("/customers?q=c1@&sort=-created_at&cols=name&cols=phone").text
    token = csrf_of(page)
    save = {"csrf_token": token, "name": "一人だけ", "q": "c1@", "sort": "-created_at", "cols": ["name", "phone"]}
    r = c.post("/customers/views", data=save, follow_redirects=False)
    assert r.status_code == 303
    applied = c.get(r.headers["location"]).text
    # The view's search (one customer) and columns (no e-mail column) are applied.
    assert "太郎1" in applied and "太郎0" not in applied and "c1@example.com" not in applied
    assert re.findall(r'data-col="(\w+)"', applied) == ["name", "phone"]
    assert re.search(r'aria-current="true">一人だけ<', applied)
    # From another page, the view's link applies it with one click.
    home = c.get("/customers").text
    href = re.search(r'href="([^"]*)" data-testid="view-link">一人だけ<', home).group(1).replace("&amp;", "&")
    assert "q=c1%40" in href and c.get(href).text.count('data-testid="view-link" aria-current') == 1
    # The same name again: refused next to the name field, in Japanese, keeping the page.
    again = c.post("/customers/views", data=save)
    assert again.status_code == 422
    assert "「一人だけ」という名前のビューはすでにあります" in again.text and 'value="一人だけ"' in again.text
    view_id = re.search(r'action="/customers/views/(\d+)/delete"', home).group(1)
    r = c.post(
        f"/customers/views/{view_id}/delete", data={"csrf_token": token, "back": "/customers"}, follow_redirects=False
    )
    assert r.status_code == 303 and 'data-testid="view-link"' not in c.get("/customers").text


def test_another_users_view_cannot_be_deleted(ui_client, client):
    view = client.post("/api/v1/views", json={"name": "admin's"}).json()
    c = ui_client("viewer")
    token = csrf_of(c.get("/customers").text)
    r = c.post(f"/customers/views/{view['id']}/delete", data={"csrf_token": token})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert client.get(f"/api/v1/views/{view['id']}").status_code == 200


def test_the_name_header_sorts_ascending_first(ui_client, db):
    _seed(db, 1)
    page = ui_client("viewer").get("/customers").text
    assert re.search(r'href="/customers\?sort=full_name"', page)
    page = ui_client("viewer").get("/customers?sort=full_name").text
    assert re.search(r'href="/customers\?sort=-full_name"', page)


def test_companies_list_counts_and_pages_both_ways(ui_client, db):
    with transaction(db) as s:
        for i in range(30):
            customers.create_company(s, actor=factories.SYSTEM, data=CompanyCreate(name=f"会社{i:02d}"))
    c = ui_client("viewer")
    first = c.get("/companies?size=25").text
    assert "全30件" in first and first.count("会社") >= 25
    second = c.get(_link(first, "next")).text
    assert "会社29" in second and "会社00" not in second
    assert "会社00" in c.get(_link(second, "prev")).text


def test_the_list_finds_a_name_typed_without_a_space_and_sorts_names_by_reading(ui_client, db):
    with transaction(db) as s:
        factories.customer(s, family_name="山田", given_name="充", family_name_kana="やまだ", given_name_kana="みつる")
        factories.customer(
            s, family_name="渡辺", given_name="充", family_name_kana="わたなべ", given_name_kana="みつる"
        )
        factories.customer(s, family_name="鈴木", given_name="充", family_name_kana="すずき", given_name_kana="みつる")
    c = ui_client("viewer")
    for typed in ("山田充", "ヤマダミツル"):
        names = re.findall(r'<a href="/customers/\d+">([^<]+)</a>', c.get("/customers", params={"q": typed}).text)
        assert names == ["山田 充"], typed
    names = re.findall(r'<a href="/customers/\d+">([^<]+)</a>', c.get("/customers?sort=full_name").text)
    # ス, ヤ, ワ by the readings (by code point it would be 山, 渡, 鈴).
    assert names == ["鈴木 充", "山田 充", "渡辺 充"]


def test_the_list_opens_with_the_default_view_and_reset_opens_it_plain(ui_client, db):
    _seed(db, 2)
    c = ui_client("viewer")
    token = csrf_of(c.get("/customers").text)
    save = {"csrf_token": token, "name": "古い順", "sort": "created_at", "cols": ["name", "email"]}
    c.post("/customers/views", data=save, follow_redirects=False)
    view_id = re.search(r'action="/customers/views/(\d+)/default"', c.get("/customers").text).group(1)
    r = c.post(
        f"/customers/views/{view_id}/default", data={"csrf_token": token, "default": "1"}, follow_redirects=False
    )
    assert r.status_code == 303
    opened = c.get("/customers", follow_redirects=False)
    assert opened.status_code == 302 and "sort=created_at" in opened.headers["location"]
    assert _emails(c.get(opened.headers["location"]).text) == ["c0@example.com", "c1@example.com"]
    assert _emails(c.get("/customers?reset=1").text) == ["c1@example.com", "c0@example.com"]
    c.post(f"/customers/views/{view_id}/default", data={"csrf_token": token, "default": "0"})
    assert c.get("/customers", follow_redirects=False).status_code == 200
