"""The website snippet (/js/kizuna.js) in a real Chromium, on a test site served from another local origin."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from kizuna.auth.permissions import Actor
from kizuna.customers.models import Customer
from kizuna.db import new_session
from kizuna.events.models import Event
from kizuna.ingest import sources
from tests.conftest import free_port

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title>
<script>window.kizuna=window.kizuna||function(){{(kizuna.q=kizuna.q||[]).push(arguments)}}</script>
<script src="{server}/js/kizuna.js" data-write-key="{key}" {consent}></script>
</head><body>
<form data-kizuna-identify onsubmit="event.preventDefault(); document.body.dataset.sent = '1'">
  <input name="email" type="email" value="Mika@Example.jp">
  <input name="lastName" value="鈴木">
  <input name="password" type="password" value="secret-never-sent">
  <button id="go">Send</button>
</form>
<button id="agree" onclick="kizuna('consent', true)">OK</button>
</body></html>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A plain static web server for the shop's pages, on its own port (another origin than Kizuna)."""
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _write_key(db) -> str:  # noqa: ANN001
    with new_session(db) as s:
        _, key = sources.create_source(s, actor=Actor.system("test"), name="shop")
        s.commit()
    return key


def _events(db) -> list[Event]:  # noqa: ANN001
    with new_session(db) as s:
        return list(s.scalars(select(Event).order_by(Event.id)))


def _wait(check, seconds: float = 10):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    return check()


def test_page_view_and_identify_on_form_submit(page, live_server, site, db, tmp_path) -> None:  # noqa: ANN001
    key = _write_key(db)
    (tmp_path / "index.html").write_text(PAGE.format(server=live_server, key=key, consent=""), encoding="utf-8")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.post_data or "") if "/v1/" in r.url else None)
    page.goto(f"{site}/index.html")
    (view,) = _wait(lambda: _events(db))
    assert (view.type, view.channel, view.properties["title"]) == ("page_view", "web", "Shop")
    assert view.properties["path"] == "/index.html"
    with new_session(db) as s:
        assert s.get(Customer, view.customer_id).status == "anonymous"
    page.click("#go")

    def identified() -> Customer | None:
        with new_session(db) as s:
            found = s.get(Customer, view.customer_id)
            return found if found.status == "active" else None

    person = _wait(identified)
    assert person is not None and (person.email, person.family_name) == ("mika@example.jp", "鈴木")
    assert not any("secret-never-sent" in body for body in sent)


def test_nothing_is_sent_before_consent(page, live_server, site, db, tmp_path) -> None:  # noqa: ANN001
    key = _write_key(db)
    html = PAGE.format(server=live_server, key=key, consent="data-require-consent")
    (tmp_path / "index.html").write_text(html, encoding="utf-8")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/v1/" in r.url else None)
    page.goto(f"{site}/index.html")
    page.click("#go")
    page.wait_for_function("document.body.dataset.sent === '1'")
    page.wait_for_timeout(500)
    assert sent == [] and _events(db) == []
    assert page.evaluate("Object.keys(localStorage)") == []
    page.click("#agree")
    # The page view and the identify that waited for consent go once it is given.
    events = _wait(lambda: _events(db))
    assert [e.type for e in events] == ["page_view"]
    assert _wait(lambda: len(sent) >= 2)
    assert page.evaluate("localStorage.getItem('kizuna_consent')") == "granted"
    page.reload()
    assert _wait(lambda: len(_events(db)) == 2)
