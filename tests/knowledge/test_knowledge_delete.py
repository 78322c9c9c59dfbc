"""Deleting an FAQ article from the UI: a confirm step, CSRF, the version the editor read (a stale one refused),
audited, in both languages, and the bot's index forgets the article at once."""

from __future__ import annotations

from sqlalchemy import select

from kizuna.auth.models import AuditEntry
from kizuna.db import new_session
from kizuna.knowledge.answer import answer
from kizuna.knowledge.models import Article
from tests.web.conftest import csrf_of


def _article(c, title: str, body: str) -> None:  # noqa: ANN001
    data = {"csrf_token": csrf_of(c.get("/knowledge/new").text), "title": title, "body": body, "language": "ja",
            "tags": "", "published": "on"}  # fmt: skip
    assert c.post("/knowledge/new", data=data, follow_redirects=False).status_code == 303


def _bot_sources(db, question: str) -> list[str]:  # noqa: ANN001
    with new_session(db) as s:
        return [source.title for source in answer(s, question).sources]


def test_support_deletes_an_article_after_confirming_and_the_bot_forgets_it(ui_client, db) -> None:  # noqa: ANN001
    c = ui_client("support")
    _article(c, "ギフト包装", "1点220円でギフト包装を承ります。のしも無料です。")
    _article(c, "営業時間", "平日10時から17時まで営業しています。")
    # The bot answers from it (and so has it in its cached index) before the delete.
    assert "ギフト包装" in _bot_sources(db, "ギフト包装はできますか")
    assert 'href="/knowledge/1/delete"' in c.get("/knowledge/1").text
    confirm = c.get("/knowledge/1/delete")
    assert confirm.status_code == 200 and "「ギフト包装」を削除しますか" in confirm.text
    assert 'name="version" value="1"' in confirm.text
    # Without the form's CSRF token nothing is deleted.
    forged = c.post("/knowledge/1/delete", data={"version": "1"}, follow_redirects=False)
    assert forged.status_code in (400, 403)
    unversioned = c.post("/knowledge/1/delete", data={"csrf_token": csrf_of(confirm.text)}, follow_redirects=False)
    assert unversioned.status_code == 422 and "version" in unversioned.text
    done = c.post("/knowledge/1/delete", data={"csrf_token": csrf_of(confirm.text), "version": "1"},
                  follow_redirects=False)  # fmt: skip
    assert done.status_code == 303 and done.headers["location"] == "/knowledge"
    assert c.get("/knowledge/1").status_code == 404
    assert "ギフト包装" not in c.get("/knowledge").text
    assert "ギフト包装" not in _bot_sources(db, "ギフト包装はできますか")
    assert "営業時間" in _bot_sources(db, "営業時間を教えて")
    tried = c.get("/knowledge", params={"ask": "ギフト包装はできますか"}).text
    assert 'href="/knowledge/1"' not in tried
    with new_session(db) as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "article.delete"))
        assert entry.entity_id == "1" and entry.summary == "ギフト包装" and entry.actor_user_id is not None
        assert s.get(Article, 2) is not None


def test_a_delete_from_a_stale_page_is_refused_with_the_current_version(ui_client, db) -> None:  # noqa: ANN001
    c = ui_client("admin")
    _article(c, "送料", "全国一律550円です。")
    old = c.get("/knowledge/1/delete").text
    edit = {"csrf_token": csrf_of(old), "title": "送料について", "body": "全国一律550円です。", "language": "ja",
            "tags": "", "published": "on", "version": "1"}  # fmt: skip
    assert c.post("/knowledge/1", data=edit, follow_redirects=False).status_code == 303
    stale = c.post("/knowledge/1/delete", data={"csrf_token": csrf_of(old), "version": "1"}, follow_redirects=False)
    assert stale.status_code == 409 and 'data-testid="delete-problem"' in stale.text
    assert 'name="version" value="2"' in stale.text
    with new_session(db) as s:
        assert s.get(Article, 1).title == "送料について"


def test_the_confirm_page_speaks_english_and_a_viewer_cannot_delete(ui_client) -> None:  # noqa: ANN001
    admin, viewer = ui_client("admin"), ui_client("viewer")
    _article(admin, "返品", "未開封品は8日以内に返品できます。")
    admin.cookies.set("kizuna_lang", "en")
    english = admin.get("/knowledge/1/delete").text
    assert "Delete “返品”?" in english and "Delete the article" in english
    assert 'data-testid="delete-article"' not in viewer.get("/knowledge/1").text
    assert viewer.get("/knowledge/1/delete").status_code == 403
    token = csrf_of(viewer.get("/knowledge").text)
    refused = viewer.post("/knowledge/1/delete", data={"csrf_token": token, "version": "1"}, follow_redirects=False)
    assert refused.status_code == 403
    assert admin.get("/knowledge/1").status_code == 200
