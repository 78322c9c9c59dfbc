"""The defects of issue 12 "found by trying", over plain HTTP: each one as the user met it, now answered right."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from kizuna.auth.models import ApiToken
from kizuna.customers.models import Note
from kizuna.customers.schemas import ConsentCreate, NoteCreate
from kizuna.db import new_session, transaction
from kizuna.web.i18n import catalog
from kizuna.web.ui_base import error_text
from tests import factories
from tests.web.conftest import csrf_of

WRITTEN = "一行目\n①㈱ｶﾀｶﾅ！\n\n  インデント付きの行"


def a_customer(db) -> int:  # noqa: ANN001
    with transaction(db) as s:
        return factories.customer(s).id


def notes_of(db, customer_id: int) -> list[str]:  # noqa: ANN001
    s = new_session(db)
    try:
        return list(s.scalars(select(Note.body).where(Note.customer_id == customer_id).order_by(Note.id)))
    finally:
        s.close()


def test_a_note_is_stored_as_written_with_line_breaks_and_no_normalising(ui_client, db):
    customer_id = a_customer(db)
    c = ui_client("support")
    csrf = csrf_of(c.get(f"/customers/{customer_id}").text)
    r = c.post(
        f"/customers/{customer_id}/notes", data={"csrf_token": csrf, "body": f"  {WRITTEN}\n "}, follow_redirects=False
    )
    assert r.status_code == 303
    assert notes_of(db, customer_id) == [WRITTEN]
    page = c.get(f"/customers/{customer_id}").text
    assert '<div class="note-body">一行目\n①㈱ｶﾀｶﾅ！' in page


def test_a_note_through_the_api_is_stored_as_written_too(client, db):
    customer_id = a_customer(db)
    r = client.post(f"/api/v1/customers/{customer_id}/notes", json={"body": WRITTEN})
    assert r.status_code == 201, r.text
    assert r.json()["body"] == WRITTEN
    refused = client.post(f"/api/v1/customers/{customer_id}/notes", json={"body": "a\x00b"})
    assert refused.status_code == 422


def test_free_text_is_trimmed_only_and_refuses_nul_and_lone_surrogates():
    assert NoteCreate(body=" ｶﾀｶﾅ\r\n２行目 ").body == "ｶﾀｶﾅ\r\n２行目"
    for bad in ("a\x00b", "a\ud800b"):
        with pytest.raises(ValueError, match="invalid Unicode"):
            NoteCreate.model_validate({"body": bad}, strict=False)
    with pytest.raises(ValueError, match="blank"):
        NoteCreate(body=" \n\t　")
    consent = ConsentCreate(channel="email", status="granted", method="phone", evidence=" 電話で受付\n担当: ｻﾄｳ ")
    assert consent.evidence == "電話で受付\n担当: ｻﾄｳ"
    assert ConsentCreate(channel="email", status="granted", method="phone", evidence="  ").evidence is None


def test_a_blank_note_reshows_the_360_page_with_the_message_next_to_the_field_in_japanese(ui_client, db):
    customer_id = a_customer(db)
    c = ui_client("support")
    csrf = csrf_of(c.get(f"/customers/{customer_id}").text)
    r = c.post(f"/customers/{customer_id}/notes", data={"csrf_token": csrf, "body": " \n　 "})
    assert r.status_code == 422
    assert 'data-testid="customer-name"' in r.text  # the 360 page, not an error page
    error = re.search(r'data-testid="error-body">([^<]*)<', r.text)
    assert error and error.group(1) == catalog("ja")["error.blank"]
    assert 'aria-describedby="err-body" aria-invalid="true">' in r.text
    assert ">" + " \n　 " + "</textarea>" in r.text  # what was typed is kept
    assert notes_of(db, customer_id) == []


def test_a_too_long_note_is_refused_next_to_the_field_in_english_for_an_english_user(ui_client, db):
    customer_id = a_customer(db)
    c = ui_client("support")
    c.cookies.set("kizuna_lang", "en")
    csrf = csrf_of(c.get(f"/customers/{customer_id}").text)
    r = c.post(f"/customers/{customer_id}/notes", data={"csrf_token": csrf, "body": "あ" * 20001})
    assert r.status_code == 422
    assert 'data-testid="error-body">At most 20000 characters.<' in r.text
    assert notes_of(db, customer_id) == []


@pytest.mark.parametrize("path", ["/nope", "/customers/abc", "/customers/999999", "/admin/nothing/here"])
def test_unknown_paths_and_bad_ids_answer_an_html_page_in_the_users_language(ui_client, db, path):
    c = ui_client("admin")
    for lang in ("ja", "en"):
        c.cookies.set("kizuna_lang", lang)
        r = c.get(path)
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("text/html")
        assert f'<html lang="{lang}">' in r.text
        message = re.search(r'data-testid="error-message">([^<]*)<', r.text).group(1)
        if lang == "ja":
            assert message == catalog("ja")["error.http_404"]
        assert "Not Found" not in r.text


def test_api_paths_keep_json_errors(client):
    for path in ("/api/v1/nope", "/v1/nope"):
        r = client.get(path)
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"


def test_get_logout_shows_a_sign_out_button_and_signed_out_it_goes_to_login(ui_client, app):
    from fastapi.testclient import TestClient

    c = ui_client("viewer")
    r = c.get("/logout")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'action="/logout"' in r.text and 'data-testid="logout-confirm"' in r.text
    r = c.post("/logout", data={"csrf_token": csrf_of(r.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    with TestClient(app) as anonymous:
        r = anonymous.get("/logout", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"


def test_a_new_token_is_shown_once_after_a_redirect_and_a_reload_creates_no_second_one(ui_client, db):
    c = ui_client("viewer")
    csrf = csrf_of(c.get("/settings/tokens").text)
    r = c.post("/settings/tokens", data={"csrf_token": csrf, "name": "ショップ連携"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/settings/tokens"
    first = c.get("/settings/tokens").text
    secret = re.search(r'value="(kz_[^"]+)" id="new-token-value"', first)
    assert secret, "the new token is shown after the redirect"
    assert secret.group(1) not in r.headers["location"]
    assert '<label for="new-token-value">' in first
    reload = c.get("/settings/tokens").text
    assert "new-token-value" not in reload  # shown once
    s = new_session(db)
    try:
        assert s.scalar(select(func.count()).select_from(ApiToken)) == 1
        flash = s.execute(select(ApiToken.name)).scalar_one()
        assert flash == "ショップ連携"
    finally:
        s.close()


def test_a_blank_token_name_is_refused_next_to_the_field(ui_client, db):
    c = ui_client("viewer")
    csrf = csrf_of(c.get("/settings/tokens").text)
    r = c.post("/settings/tokens", data={"csrf_token": csrf, "name": "   "})
    assert r.status_code == 422
    assert re.search(r'data-testid="error-name">[^<]+<', r.text)


def test_ui_errors_are_in_japanese_for_a_japanese_user(ui_client, db):
    c = ui_client("admin")
    c.cookies.set("kizuna_lang", "ja")
    # A form with a stale security token: 403, in Japanese.
    r = c.post("/settings/tokens", data={"csrf_token": "stale", "name": "x"})
    assert r.status_code == 403
    assert catalog("ja")["error.csrf"] in r.text and "security token" not in r.text
    # A request the route's own validation refuses (a Form max_length): 422 in Japanese, no English, no code.
    csrf = csrf_of(c.get("/settings/tokens").text)
    r = c.post("/admin/users/999999/unlock", data={"csrf_token": csrf})
    assert r.status_code == 404 and catalog("ja")["error.http_404"] in r.text and "not found" not in r.text
    r = c.post("/admin/users", data={"csrf_token": csrf, "email": "x@example.com", "name": "あ" * 201})
    assert r.status_code == 422
    assert "200" in r.text and "characters" not in r.text
    # A viewer may not open the users page: 403 in Japanese.
    v = ui_client("viewer")
    r = v.get("/admin/users")
    assert r.status_code == 403 and catalog("ja")["error.http_403"] in r.text and "may not" not in r.text


@pytest.mark.parametrize("status", [400, 403, 404, 405, 409, 412, 413, 422, 428, 429, 500, 418])
def test_every_error_status_has_a_japanese_text(status):
    text = error_text("ja", status)
    assert text and not re.search(r"[A-Za-z]{3,}", text)


def test_pages_have_a_skip_link_labels_aria_current_and_aria_sort(ui_client, db):
    customer_id = a_customer(db)
    c = ui_client("admin")
    page = c.get(f"/customers/{customer_id}").text
    assert '<a class="skip-link" href="#main">' in page and 'id="main"' in page
    assert '<label for="f-body">' in page and 'id="f-body" name="body"' in page
    assert 'href="/customers" class="active" aria-current="page"' in page
    listing = c.get("/customers?sort=full_name").text
    assert re.search(r'<th[^>]*aria-sort="ascending"><a class="sort asc', listing)
    assert c.get("/customers?sort=-created_at").text.count('aria-sort="descending"') == 1
    tokens = c.get("/settings/tokens").text
    assert 'href="/settings/tokens" class="active" aria-current="page"' in tokens
    assert '<label for="f-name">' in tokens


def test_an_unknown_path_shows_the_signed_in_users_navigation_in_their_own_locale(ui_client, db):
    from kizuna.auth.models import User

    c = ui_client("viewer")
    with transaction(db) as s:
        s.scalars(select(User).where(User.email == "viewer-0@example.com")).one().locale = "en"
    r = c.get("/nope")
    assert r.status_code == 404
    assert '<html lang="en">' in r.text and catalog("en")["error.http_404"] in r.text
    assert 'class="sidenav"' in r.text and "viewer-0@example.com" in r.text
