"""The UI over plain HTTP: sign-in, CSRF, redirects, permissions, security headers, translations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kizuna.db import transaction
from kizuna.web.i18n import catalog, catalog_files, choose_language
from kizuna.web.session import safe_next
from tests import factories
from tests.web.conftest import PASSWORD, csrf_of

TEMPLATES = Path(__file__).parents[2] / "kizuna" / "web" / "templates"


def test_both_catalogs_have_the_same_keys_and_no_empty_text():
    en, ja = catalog("en"), catalog("ja")
    assert sorted(set(en) - set(ja)) == [] and sorted(set(ja) - set(en)) == []
    assert all(v.strip() for v in [*en.values(), *ja.values()])
    # Each area's file exists in both languages, so a key is found where the other language keeps it.
    assert [p.name for p in catalog_files("en")[1:]] == [p.name for p in catalog_files("ja")[1:]]


def test_a_key_defined_twice_is_refused(tmp_path, monkeypatch):
    from kizuna.web import i18n

    (tmp_path / "xx").mkdir()
    (tmp_path / "xx.json").write_text(json.dumps({"a.b": "1"}), encoding="utf-8")
    (tmp_path / "xx" / "area.json").write_text(json.dumps({"a.b": "2"}), encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.catalog.cache_clear()
    try:
        with pytest.raises(ValueError, match="a.b"):
            i18n.catalog("xx")
    finally:
        i18n.catalog.cache_clear()


def test_every_literal_key_in_templates_is_in_the_catalog():
    import re

    en = catalog("en")
    used = set()
    for path in TEMPLATES.rglob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_]+\.[a-z0-9_.]+)["']""", path.read_text(encoding="utf-8")))
    # t("analytics.segment." ~ code) joins a prefix to a code: the tests of each code list check those keys.
    used = {key for key in used if not key.endswith(".")}
    assert used, "no t() calls found"
    assert sorted(used - set(en)) == []


def test_language_defaults_to_user_locale_then_japanese():
    assert choose_language(None) == "ja"
    assert choose_language(None, "en") == "en"
    assert choose_language("en", "ja") == "en"
    assert choose_language("fr", None) == "ja"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/customers/3?q=a", "/customers/3?q=a"),
        ("https://evil.example/", "/customers"),
        ("//evil.example/", "/customers"),
        ("/\\evil.example", "/customers"),
        ("javascript:alert(1)", "/customers"),
        ("/x\r\nSet-Cookie: a=b", "/customers"),
        (None, "/customers"),
    ],
)
def test_only_relative_next_paths_are_followed(raw, expected):
    assert safe_next(raw) == expected


def test_pages_redirect_to_login_with_next(app):
    with TestClient(app) as c:
        r = c.get("/customers?q=abc", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fcustomers%3Fq%3Dabc"


def test_login_rejects_wrong_password_then_accepts_right_one(app, make_user):
    email = make_user("admin")
    with TestClient(app) as c:
        token = csrf_of(c.get("/login").text)
        r = c.post("/login", data={"email": email, "password": "nope-nope-nope", "csrf_token": token})
        assert r.status_code == 401
        assert "Wrong email or password" in r.text or "正しくありません" in r.text
        token = csrf_of(r.text)
        r = c.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": token, "next": "https://evil.example/"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert r.headers["location"] == "/customers"
        cookie = r.headers["set-cookie"]
        assert "kizuna_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert c.get("/customers").status_code == 200


def test_login_without_the_double_submit_token_is_refused(app, make_user):
    email = make_user("admin")
    with TestClient(app) as c:
        r = c.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": "forged"})
        assert r.status_code == 403
        assert "kizuna_session" not in r.headers.get("set-cookie", "")


def test_post_without_csrf_token_is_forbidden(ui_client, session):
    c = ui_client("admin")
    customer = factories.customer(session, email="a@example.com")
    session.commit()
    r = c.post(f"/customers/{customer.id}/notes", data={"body": "forged"})
    assert r.status_code == 403
    r = c.post(f"/customers/{customer.id}/notes", data={"body": "forged", "csrf_token": "wrong"})
    assert r.status_code == 403
    page = c.get(f"/customers/{customer.id}")
    r = c.post(
        f"/customers/{customer.id}/notes",
        data={"body": "real note", "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "real note" in c.get(f"/customers/{customer.id}").text


def test_viewer_sees_no_note_form_and_cannot_post(ui_client, session):
    c = ui_client("viewer")
    customer = factories.customer(session)
    session.commit()
    page = c.get(f"/customers/{customer.id}")
    assert page.status_code == 200
    assert 'data-testid="note-form"' not in page.text
    r = c.post(f"/customers/{customer.id}/notes", data={"body": "x", "csrf_token": csrf_of(page.text)})
    assert r.status_code == 403


def test_audit_and_users_pages_are_admin_only(ui_client):
    marketer = ui_client("marketer")
    assert marketer.get("/admin/audit").status_code == 403
    assert marketer.get("/admin/users").status_code == 403
    admin = ui_client("admin")
    r = admin.get("/admin/audit")
    assert r.status_code == 200
    assert "user.login" in r.text


def test_admin_creates_user_and_sees_errors_for_bad_input(ui_client):
    admin = ui_client("admin")
    token = csrf_of(admin.get("/admin/users").text)
    r = admin.post(
        "/admin/users",
        data={
            "email": "new@example.com",
            "name": "New",
            "role": "sales",
            "password": "long-enough-pw",
            "csrf_token": token,
        },
    )
    assert r.status_code == 200 and "new@example.com" in r.text
    r = admin.post(
        "/admin/users",
        data={"email": "new@example.com", "role": "sales", "password": "long-enough-pw", "csrf_token": token},
    )
    assert r.status_code == 409
    # In the user's language (Japanese by default), not the API's English.
    assert catalog("ja")["error.user_email_taken"].format(email="new@example.com") in r.text


def test_security_headers_on_ui_pages(app):
    with TestClient(app) as c:
        r = c.get("/login")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "<script>" not in r.text  # inline scripts would be blocked by the CSP


def test_invalid_filter_shows_message_not_500(ui_client):
    c = ui_client("admin")
    r = c.get("/customers?email_consent=maybe")
    assert r.status_code == 422
    assert "not a valid bool" in r.text


def test_language_cookie_switches_labels_and_html_lang(ui_client):
    c = ui_client("admin")
    r = c.get("/customers")
    assert '<html lang="ja">' in r.text and "顧客" in r.text
    r = c.get("/lang/en?next=%2Fcustomers", follow_redirects=False)
    assert r.headers["location"] == "/customers"
    r = c.get("/customers")
    assert '<html lang="en">' in r.text and ">Customers<" in r.text


def test_merged_customer_id_redirects_to_survivor(ui_client, session, admin):
    from kizuna.customers.merge import merge_customers

    c = ui_client("viewer")
    a = factories.customer(session, email="a@example.com")
    b = factories.customer(session, email="b@example.com")
    merge_customers(session, actor=admin, survivor_id=a.id, merged_id=b.id, reason="duplicate")
    session.commit()
    r = c.get(f"/customers/{b.id}", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == f"/customers/{a.id}"
    page = c.get(f"/customers/{a.id}").text
    assert f"#{b.id}" in page


def test_export_downloads_the_filtered_list_and_is_audited(ui_client, db):
    with transaction(db) as s:
        factories.customer(s, email="vip@example.com", tags=["vip"])
        factories.customer(s, email="plain@example.com", family_name="佐藤")
    c = ui_client("marketer")
    token = csrf_of(c.get("/customers?tag=vip").text)
    r = c.post("/customers/export.csv", data={"tag": "vip", "csrf_token": token})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    body = r.content.decode("utf-8-sig")
    assert "vip@example.com" in body and "plain@example.com" not in body
    r = c.post("/customers/export.parquet", data={"q": "plain", "csrf_token": token})
    assert r.status_code == 200 and r.content[:4] == b"PAR1"
    viewer = ui_client("viewer")
    viewer_token = csrf_of(viewer.get("/customers").text)
    assert viewer.post("/customers/export.csv", data={"csrf_token": viewer_token}).status_code == 403


def test_logout_ends_the_session(ui_client):
    c = ui_client("viewer")
    token = csrf_of(c.get("/customers").text)
    assert c.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert c.get("/customers", follow_redirects=False).status_code == 303


def test_customer_list_pages_with_a_next_link_and_keeps_filters(ui_client, db, monkeypatch):
    from kizuna.web import ui_lists

    monkeypatch.setattr(ui_lists, "PAGE_SIZE", 2)
    with transaction(db) as s:
        for n in range(3):
            factories.customer(s, email=f"c{n}@example.com", tags=["vip"])
    c = ui_client("viewer")
    first = c.get("/customers?tag=vip&sort=created_at").text
    assert "c0@example.com" in first and "c1@example.com" in first and "c2@example.com" not in first
    import re

    href = re.search(r'href="(/customers\?[^"]*cursor=[^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert "tag=vip" in href
    second = c.get(href).text
    assert "c2@example.com" in second and "c0@example.com" not in second
    assert 'rel="next"' not in second


def test_unknown_customer_is_an_html_404_and_companies_list(ui_client, session):
    from kizuna.customers import service as customers
    from kizuna.customers.schemas import CompanyCreate

    customers.create_company(
        session, actor=factories.SYSTEM, data=CompanyCreate(name="株式会社テスト", domain="test.jp")
    )
    session.commit()
    c = ui_client("viewer")
    r = c.get("/customers/999999")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    r = c.get("/companies?q=test.jp")
    assert r.status_code == 200 and "株式会社テスト" in r.text
