"""FAQ articles through /api/v1/knowledge: create, edit with optimistic locking, audit, bad input."""

from __future__ import annotations

from sqlalchemy import select

from kizuna.auth.models import AuditEntry
from kizuna.db import new_session


def test_support_writes_an_article_and_the_bot_uses_it(client_as, db) -> None:  # noqa: ANN001
    support = client_as("support")
    r = support.post(
        "/api/v1/knowledge",
        json={"title": "営業時間", "body": "平日10時から17時まで営業しています。", "language": "ja", "tags": ["店舗"]},
    )
    assert r.status_code == 201, r.text
    article = r.json()
    found = support.get("/api/v1/knowledge/answer", params={"q": "営業時間を教えて"}).json()
    assert found["sources"][0]["id"] == article["id"] and found["confident"]
    # An edit with the version read goes through; a second edit with the same (stale) version is refused.
    ok = support.patch(f"/api/v1/knowledge/{article['id']}", json={"title": "営業時間と定休日", "version": 1})
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = support.patch(f"/api/v1/knowledge/{article['id']}", json={"title": "x", "version": 1})
    assert stale.status_code in (409, 412)
    with new_session(db) as s:
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "article")))
    assert actions == ["article.create", "article.update"]


def test_bad_articles_are_refused_naming_the_field(client) -> None:  # noqa: ANN001
    r = client.post("/api/v1/knowledge", json={"title": "x", "body": "y", "language": "fr"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "language"
    r = client.post("/api/v1/knowledge", json={"title": "", "body": "y", "language": "ja"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "title"
    assert client.get("/api/v1/knowledge").json() == []
    assert client.get("/api/v1/knowledge/999").status_code == 404
