"""Active customers unless a status is asked for: one default scope, so the API list, exports and the UI agree."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import select

from kizuna.customers import merge
from kizuna.customers.filters import CUSTOMER_FILTERS
from kizuna.customers.models import Customer
from tests import factories
from tests.web.conftest import csrf_of

# (UI list form, the same filter as API parameters); the UI's "prefecture" box is a contains filter.
CASES = [
    ({}, {}),
    ({"status": "active"}, {"status": "active"}),
    ({"status": "merged"}, {"status": "merged"}),
    ({"status": "all"}, {"status": "all"}),
    ({"prefecture": "東京"}, {"prefecture__contains": "東京"}),
    ({"prefecture": "東京", "status": "merged"}, {"prefecture__contains": "東京", "status": "merged"}),
    ({"prefecture": "東京", "status": "all"}, {"prefecture__contains": "東京", "status": "all"}),
]


@pytest.fixture
def people(session) -> dict[str, int]:
    ids = {
        "tokyo": factories.customer(session, email="t@example.jp", prefecture="東京都").id,
        "osaka": factories.customer(session, email="o@example.jp", prefecture="大阪府").id,
        "tokyo_merged": factories.customer(session, email="tm@example.jp", prefecture="東京都").id,
        "osaka_merged": factories.customer(session, email="om@example.jp", prefecture="大阪府").id,
    }
    for name, into in (("tokyo_merged", "tokyo"), ("osaka_merged", "osaka")):
        merge.merge_customers(session, actor=factories.SYSTEM, survivor_id=ids[into], merged_id=ids[name], reason="t")
    session.commit()
    return ids


def _csv_ids(content: bytes) -> set[int]:
    return {int(row["id"]) for row in csv.DictReader(io.StringIO(content.decode("utf-8-sig")))}


def _page_ids(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'class="name-cell"><a href="/customers/(\d+)"', html)}


@pytest.mark.parametrize(("form", "params"), CASES)
def test_api_list_export_and_ui_list_show_the_same_customers(client, ui_client, session, people, form, params):
    ui = ui_client("admin")
    api = {c["id"] for c in client.get("/api/v1/customers", params=params).json()["items"]}
    export = _csv_ids(client.get("/api/v1/exports/customers.csv", params=params).content)
    page = ui.get("/customers", params=form)
    assert page.status_code == 200
    listed = _page_ids(page.text)
    token = csrf_of(page.text)
    ui_export = _csv_ids(ui.post("/customers/export.csv", data={**form, "csrf_token": token}).content)
    direct = set(session.scalars(CUSTOMER_FILTERS.apply(select(Customer.id), params)))
    assert api == export == listed == ui_export == direct
    status = params.get("status", "active")
    expected = {
        i
        for name, i in people.items()
        if (name.startswith("tokyo") or "prefecture__contains" not in params)
        and (status == "all" or (status == "merged") == name.endswith("_merged"))
    }
    assert api == expected


def test_any_filter_on_status_replaces_the_default_scope(session, people):
    def ids(params):
        return set(session.scalars(CUSTOMER_FILTERS.apply(select(Customer.id), params)))

    assert ids({}) == {people["tokyo"], people["osaka"]}
    assert ids({"status__ne": "active"}) == {people["tokyo_merged"], people["osaka_merged"]}
    assert ids({"status__in": "active,merged"}) == set(people.values())
    assert ids({"status": ""}) == ids({})
