"""Fixtures for the UI: users with passwords, a signed-in browser page, and a signed-in HTTP client."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine

from kizuna.db import transaction
from tests import factories

PASSWORD = "password-123456"


@pytest.fixture
def make_user(db: Engine) -> Callable[..., str]:
    """Create a user with a password; returns the email."""

    def make(role: str, email: str | None = None, name: str = "") -> str:
        email = email or f"{role}@example.com"
        with transaction(db) as s:
            factories.user(s, email=email, role=role, password=PASSWORD, name=name)
        return email

    return make


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


@pytest.fixture
def ui_client(app, make_user) -> Iterator[Callable[[str], object]]:  # noqa: ANN001
    """A factory: a TestClient signed in through the login form with a given role."""
    from fastapi.testclient import TestClient

    made: list[TestClient] = []

    def make(role: str) -> TestClient:
        email = make_user(role, f"{role}-{len(made)}@example.com")
        c = TestClient(app, base_url="http://testserver")
        made.append(c)
        token = csrf_of(c.get("/login").text)
        r = c.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": token, "next": "/customers"},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def sign_in(live_server: str, page, make_user) -> Callable[..., object]:  # noqa: ANN001
    """Sign the browser page in as a new user of ``role``; returns the page."""

    def go(role: str = "admin", email: str | None = None):  # noqa: ANN202
        email = make_user(role, email)
        page.goto(f"{live_server}/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/customers.*"))
        return page

    return go
