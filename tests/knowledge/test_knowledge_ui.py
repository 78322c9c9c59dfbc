"""The FAQ pages over HTTP: support writes and edits an article through the forms (CSRF, a stale edit refused
with the typed text kept), a viewer reads but cannot write, and the public article page."""

from __future__ import annotations

from tests.web.conftest import csrf_of


def _new(c, **values):  # noqa: ANN001, ANN003, ANN202
    token = csrf_of(c.get("/knowledge/new").text)
    data = {"csrf_token": token, "title": "", "body": "", "language": "ja", "tags": "", "published": "on", **values}
    return c.post("/knowledge/new", data=data, follow_redirects=False)


def test_support_writes_and_edits_an_article(ui_client) -> None:  # noqa: ANN001
    c = ui_client("support")
    r = _new(c, title="ギフト包装", body="1点220円で承ります。", tags="ギフト、包装")
    assert r.status_code == 303, r.text
    listing = c.get("/knowledge").text
    assert "ギフト包装" in listing and "/knowledge/1" in listing
    tried = c.get("/knowledge", params={"ask": "ギフト包装はできますか"}).text
    assert 'data-testid="tried"' in tried and 'href="/knowledge/1"' in tried
    edit = c.get("/knowledge/1").text
    token = csrf_of(edit)
    fields = {"csrf_token": token, "title": "ギフト包装・のし", "body": "1点220円です。", "language": "ja", "tags": ""}
    assert c.post("/knowledge/1", data={**fields, "version": "1"}, follow_redirects=False).status_code == 303
    stale = c.post("/knowledge/1", data={**fields, "title": "古い画面から", "version": "1"}, follow_redirects=False)
    assert stale.status_code == 409 and "古い画面から" in stale.text
    assert 'name="version" value="2"' in stale.text


def test_bad_article_is_refused_next_to_the_field(ui_client) -> None:  # noqa: ANN001
    c = ui_client("admin")
    r = _new(c, title="", body="本文")
    assert r.status_code == 422 and 'data-testid="error-title"' in r.text
    assert "本文" in r.text
    assert "articles-table" in c.get("/knowledge").text and "/knowledge/1" not in c.get("/knowledge").text


def test_viewer_reads_but_cannot_write(ui_client) -> None:  # noqa: ANN001
    admin, viewer = ui_client("admin"), ui_client("viewer")
    _new(admin, title="営業時間", body="平日10時から17時です。")
    assert viewer.get("/knowledge").status_code == 200
    assert viewer.get("/knowledge/new").status_code == 403
    assert 'data-testid="save-article"' not in viewer.get("/knowledge/1").text
    # Visitors open the article from the chat's link without signing in; a draft stays hidden.
    public = viewer.get("/faq/1")
    assert public.status_code == 200 and "平日10時から17時です。" in public.text
