"""A UI page whose database work fails unexpectedly still answers an HTML 500 page in the user's language."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from kizuna.web.deps import DB
from kizuna.web.session import CurrentViewer
from kizuna.web.ui_base import ui_router
from tests.web.conftest import PASSWORD, csrf_of


def test_a_failing_query_gives_the_error_page_not_a_crash(app, make_user):
    broken = ui_router()

    @broken.get("/test-broken")
    def broken_page(session: DB, viewer: CurrentViewer) -> None:
        # The statement fails, the session rolls back and expires the viewer's rows before the error page.
        session.execute(text("SELECT no_such_column FROM no_such_table"))

    app.include_router(broken)
    email = make_user("viewer", "broken@example.com")
    with TestClient(app, raise_server_exceptions=False) as client:
        token = csrf_of(client.get("/login").text)
        client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token, "next": "/customers"})
        client.get("/lang/ja?next=/customers")
        r = client.get("/test-broken")
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/html")
    assert 'lang="ja"' in r.text and "broken@example.com" in r.text  # the page, with the signed-in user's menu
