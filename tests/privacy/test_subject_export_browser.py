"""In Chromium: the 360 page's "export personal data" button downloads the ZIP (a POST carrying the CSRF token)."""

from __future__ import annotations

import json
import re
import zipfile

import pytest

from kizuna.db import transaction
from tests import factories
from tests.web.conftest import sign_in  # noqa: F401  (a signed-in browser page)
from tests.web.test_every_page_browser import blocking_violations, overflow

pytestmark = pytest.mark.browser


def test_the_360_button_downloads_the_customer_s_data(sign_in, live_server, db, tmp_path):  # noqa: F811
    with transaction(db) as s:
        c = factories.customer(s, family_name="佐藤", given_name="花子", email="hanako@example.jp")
        factories.event(s, customer_id=c.id, type="page_view", channel="web", occurred_at=factories.at("2024-04-01"))
        customer_id = c.id
    page = sign_in("admin")
    page.goto(f"{live_server}/customers/{customer_id}")
    button = page.get_by_role("button", name="個人データを書き出す")
    with page.expect_download() as download:
        button.click()
    path = tmp_path / "export.zip"
    download.value.save_as(path)
    assert download.value.suggested_filename.startswith(f"customer-{customer_id}-data-")
    with zipfile.ZipFile(path) as zf:
        assert json.loads(zf.read("customers.json"))[0]["email"] == "hanako@example.jp"
        assert len(json.loads(zf.read("events.json"))) == 1
    # The page stays where it was: a download, not a navigation.
    assert page.url.endswith(f"/customers/{customer_id}")
    # With the button in the actions row, the page still fits a phone and passes axe, in both languages.
    page.set_viewport_size({"width": 390, "height": 900})
    for lang in ("ja", "en"):
        page.goto(f"{live_server}/lang/{lang}?next=/customers/{customer_id}")
        page.wait_for_url(re.compile(rf".*/customers/{customer_id}$"))
        scroll, inner = overflow(page)
        assert scroll <= inner, f"{scroll}px wide in a {inner}px window ({lang})"
        assert not blocking_violations(page), lang
    assert page.get_by_role("button", name="Export personal data").is_visible()
