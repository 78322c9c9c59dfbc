"""The segment page's "Export audience" form, the 360 page's provisions section and the admin list."""

from __future__ import annotations

import re

import pytest

from kizuna.db import transaction
from tests.audiences.conftest import world
from tests.web.conftest import csrf_of


def _world(db):
    with transaction(db) as s:
        return world(s)


def test_marketers_download_the_audience_and_the_360_page_shows_the_provision(db, ui_client):
    w = _world(db)
    marketer = ui_client("marketer")
    page = marketer.get(f"/segments/{w['segment_id']}")
    assert page.status_code == 200 and 'data-testid="export-audience"' in page.text
    r = marketer.post(
        f"/segments/{w['segment_id']}/audience", data={"platform": "google", "csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == f'attachment; filename="audience-{w["segment_id"]}-google.csv"'
    assert r.text.splitlines()[0] == "Email,Phone,First Name,Last Name,Country,Zip"
    assert len(r.text.splitlines()) == 3
    # Without the form's token nothing is exported.
    assert marketer.post(f"/segments/{w['segment_id']}/audience", data={"platform": "google"}).status_code == 403

    c360 = marketer.get(f"/customers/{w['yes']}").text
    section = c360[c360.index('data-testid="provisions"') :]
    assert "Google LLC (Google Ads Customer Match)" in section[:2000]
    assert "email, phone, given_name, family_name, country, postal_code" in section[:2000]
    other = marketer.get(f"/customers/{w['ids'][2]}").text
    assert "第三者への提供はありません" in other or "Never provided to a third party" in other


def test_viewers_see_no_export_form_and_only_admins_list_provisions(db, ui_client):
    w = _world(db)
    viewer = ui_client("viewer")
    assert 'data-testid="export-audience"' not in viewer.get(f"/segments/{w['segment_id']}").text
    assert viewer.get("/admin/provisions").status_code == 403
    admin = ui_client("admin")
    page = admin.get(f"/segments/{w['segment_id']}")
    admin.post(f"/segments/{w['segment_id']}/audience", data={"platform": "meta", "csrf_token": csrf_of(page.text)})
    listing = admin.get("/admin/provisions", params={"recipient": "Meta"})
    assert listing.status_code == 200
    assert len(re.findall('data-testid="provision-row"', listing.text)) == 2
    only = admin.get("/admin/provisions", params={"customer_id": w["yes"]}).text
    assert len(re.findall('data-testid="provision-row"', only)) == 1
    assert admin.get("/admin/provisions", params={"recipient": "nobody"}).text.count('data-testid="provision-row"') == 0


@pytest.mark.browser
def test_the_export_button_downloads_the_file_in_a_browser(db, sign_in, live_server):
    w = _world(db)
    page = sign_in("marketer")
    page.goto(f"{live_server}/segments/{w['segment_id']}")
    page.get_by_test_id("audience-platform").select_option("meta")
    with page.expect_download() as info:
        page.get_by_test_id("export-audience").click()
    download = info.value
    assert download.suggested_filename == f"audience-{w['segment_id']}-meta.csv"
    lines = open(download.path(), encoding="utf-8").read().splitlines()  # noqa: PTH123, SIM115
    assert lines[0] == "EMAIL,PHONE,FN,LN,CT,ST,ZIP,COUNTRY" and len(lines) == 3


@pytest.mark.browser
def test_the_new_pages_fit_a_phone_and_pass_axe_in_both_languages(db, sign_in, live_server):
    from tests.web.test_every_page_browser import blocking_violations, overflow

    w = _world(db)
    page = sign_in("admin")
    page.goto(f"{live_server}/segments/{w['segment_id']}")
    with page.expect_download():
        page.get_by_test_id("export-audience").click()
    problems: list[str] = []
    for lang in ("ja", "en"):
        page.goto(f"{live_server}/lang/{lang}?next=/customers")
        for width in (390, 1400):
            page.set_viewport_size({"width": width, "height": 900})
            for path in (f"/segments/{w['segment_id']}", "/admin/provisions", f"/customers/{w['yes']}"):
                page.goto(f"{live_server}{path}")
                scroll, inner = overflow(page)
                if scroll > inner:
                    problems.append(f"{path} [{lang}, {width}px]: {scroll}px wide")
                problems.extend(f"{path} [{lang}, {width}px]: {v}" for v in blocking_violations(page))
    assert not problems, "\n".join(problems)
