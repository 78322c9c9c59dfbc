"""The 360 page shows every identity and the customers that may be the same person."""

from __future__ import annotations

from kizuna.db import transaction
from tests import factories


def test_360_page_lists_identities_and_a_possible_duplicate(ui_client, db):
    with transaction(db) as s:
        a = factories.customer(s, email="a@example.jp", phone="03-1234-5678")
        b = factories.customer(s, email="b@example.jp", phone="03-1234-5678", given_name="次郎")
    page = ui_client("viewer").get(f"/customers/{a.id}")
    assert page.status_code == 200
    assert "a@example.jp" in page.text and "03-1234-5678" in page.text  # the phone identity, national format
    assert "電話番号が同じ" in page.text and "same phone" not in page.text
    assert 'data-testid="possible-duplicate"' in page.text
    assert f'href="/customers/{b.id}"' in page.text
