"""Sign-in under attack: throttling and lockout, audited failures, password change and reset, password rules."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from kizuna.auth import signin
from kizuna.auth.models import AuditEntry
from kizuna.config import get_settings
from kizuna.db import new_session
from tests.cli import kizuna as run_kizuna
from tests.test_cli import _kizuna
from tests.web.conftest import PASSWORD, csrf_of


def _login(app, email: str, password: str) -> int:
    with TestClient(app) as c:
        token = csrf_of(c.get("/login").text)
        r = c.post(
            "/login",
            data={"email": email, "password": password, "csrf_token": token, "next": "/customers"},
            follow_redirects=False,
        )
        return r.status_code


def _audit_count(engine, action: str) -> int:
    with new_session(engine) as s:
        return s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action))


@pytest.fixture
def counted_checks(monkeypatch):
    """Counts password hashings (and the most that ran at the same time)."""
    seen = {"calls": 0, "now": 0, "most": 0}
    lock = threading.Lock()
    real = signin.hasher

    class Counting:
        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(real, name)

        def verify(self, hash_: str, password: str) -> bool:
            with lock:
                seen["calls"] += 1
                seen["now"] += 1
                seen["most"] = max(seen["most"], seen["now"])
            try:
                return real.verify(hash_, password)
            finally:
                with lock:
                    seen["now"] -= 1

    monkeypatch.setattr(signin, "hasher", Counting())
    return seen


def test_wrong_passwords_lock_the_account_and_are_audited(app, make_user, counted_checks):
    email = make_user("viewer")
    for _ in range(10):
        assert _login(app, email, "wrong-password-0") == 401
    assert _audit_count(app.state.engine, "user.login_failed") == 10
    calls = counted_checks["calls"]
    # Locked now: even the right password is refused, and no password is hashed any more.
    assert _login(app, email, PASSWORD) == 429
    assert _login(app, email, "wrong-password-0") == 429
    assert counted_checks["calls"] == calls
    assert _audit_count(app.state.engine, "user.locked") == 1


def test_an_admin_lifts_the_lock_by_api_ui_and_cli(app, make_user, client, ui_client, engine):
    email = make_user("viewer")
    for _ in range(11):
        _login(app, email, "wrong-password-0")
    assert _login(app, email, PASSWORD) == 429
    users = client.get("/api/v1/users").json()
    me = next(u for u in users if u["email"] == email)
    assert me["locked"] is True
    assert client.post(f"/api/v1/users/{me['id']}/unlock").status_code == 204
    assert _login(app, email, PASSWORD) == 303

    for _ in range(11):
        _login(app, email, "wrong-password-0")
    admin = ui_client("admin")
    page = admin.get("/admin/users").text
    assert 'data-testid="locked"' in page
    r = admin.post(f"/admin/users/{me['id']}/unlock", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303
    assert _login(app, email, PASSWORD) == 303

    for _ in range(11):
        _login(app, email, "wrong-password-0")
    url = engine.url.render_as_string(hide_password=False)
    done = _kizuna(get_settings().home, "users", "unlock", "--email", email, db_url=url)
    assert done.returncode == 0, done.stderr + done.stdout
    assert _login(app, email, PASSWORD) == 303
    assert _audit_count(app.state.engine, "user.unlock") == 3


def test_one_address_trying_many_accounts_is_blocked(app, make_user, monkeypatch):
    monkeypatch.setattr(get_settings(), "signin_address_failures", 5)
    email = make_user("viewer")
    for i in range(5):
        assert _login(app, f"nobody{i}@example.com", "wrong-password-0") == 401
    assert _login(app, "nobody9@example.com", "wrong-password-0") == 429
    assert _login(app, email, PASSWORD) == 429  # the address, not the account, is blocked


def test_parallel_wrong_tries_are_counted_before_hashing(app, make_user, counted_checks):
    email = make_user("viewer")
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(lambda _: _login(app, email, "wrong-password-0"), range(40)))
    assert set(codes) <= {401, 429}
    # Each attempt counts before its hashing: at most the account's limit are ever checked, one at a time.
    assert counted_checks["calls"] <= get_settings().signin_account_failures
    assert counted_checks["most"] <= get_settings().signin_parallel_checks
    assert codes.count(429) >= 40 - get_settings().signin_account_failures


def test_passwords_keep_their_spaces(app, client):
    spaced = "  spaced out pass  "
    r = client.post("/api/v1/users", json={"email": "space@example.com", "role": "viewer", "password": spaced})
    assert r.status_code == 201, r.text
    assert _login(app, "space@example.com", spaced) == 303
    assert _login(app, "space@example.com", spaced.strip()) == 401


def test_common_passwords_are_refused(client):
    for weak in ("password123", "QWERTYUIOP", "aaaaaaaaaaaa", "common@example.com"):
        r = client.post("/api/v1/users", json={"email": "common@example.com", "role": "viewer", "password": weak})
        assert r.status_code == 422, weak
        assert r.json()["error"]["field"] == "password"


def test_a_user_changes_their_own_password_by_api(app, client_as):
    c = client_as("viewer")
    email = c.get("/api/v1/me").json()["email"]
    wrong = c.post("/api/v1/me/password", json={"current_password": "nope-nope-nope", "new_password": "new pass 4567"})
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "current_password"
    assert _audit_count(app.state.engine, "user.login_failed") == 1
    weak = c.post("/api/v1/me/password", json={"current_password": "password-123456", "new_password": "password123"})
    assert weak.status_code == 422
    ok = c.post("/api/v1/me/password", json={"current_password": "password-123456", "new_password": "new pass 4567"})
    assert ok.status_code == 204, ok.text
    assert _login(app, email, "new pass 4567") == 303
    assert _login(app, email, "password-123456") == 401
    assert _audit_count(app.state.engine, "user.password_change") == 1


def test_a_user_changes_their_own_password_in_the_ui(app, ui_client):
    c = ui_client("sales")
    page = c.get("/settings/password")
    assert page.status_code == 200
    token = csrf_of(page.text)
    bad = c.post("/settings/password", data={"csrf_token": token, "current_password": "x", "new_password": "y"})
    assert bad.status_code == 422 and 'data-testid="password-error"' in bad.text
    r = c.post(
        "/settings/password",
        data={"csrf_token": token, "current_password": PASSWORD, "new_password": " brand new pass "},
    )
    assert r.status_code == 200 and 'data-testid="password-changed"' in r.text
    assert c.get("/customers", follow_redirects=False).status_code == 200  # this session stays signed in
    assert _login(app, "sales-0@example.com", " brand new pass ") == 303


def test_an_admin_resets_a_password_by_api_ui_and_cli(app, client, ui_client, engine, make_user):
    email = make_user("viewer", "reset@example.com")
    users = client.get("/api/v1/users").json()
    user_id = next(u["id"] for u in users if u["email"] == email)
    assert client.put(f"/api/v1/users/{user_id}/password", json={"password": "qwertyuiop"}).status_code == 422
    assert client.put(f"/api/v1/users/{user_id}/password", json={"password": "reset by api 1"}).status_code == 204
    assert _login(app, email, "reset by api 1") == 303

    admin = ui_client("admin")
    token = csrf_of(admin.get("/admin/users").text)
    r = admin.post(
        f"/admin/users/{user_id}/password",
        data={"csrf_token": token, "password": "reset by ui 22"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert _login(app, email, "reset by ui 22") == 303

    url = engine.url.render_as_string(hide_password=False)
    done = _kizuna_input(url, "reset by cli 333\nreset by cli 333\n", "users", "set-password", "--email", email)
    assert done.returncode == 0, done.stderr + done.stdout
    assert _login(app, email, "reset by cli 333") == 303
    assert _login(app, email, "reset by ui 22") == 401
    assert _audit_count(app.state.engine, "user.password_reset") == 3


def test_the_demo_password_cannot_be_chosen(client):
    r = client.post("/api/v1/users", json={"email": "d@example.com", "role": "viewer", "password": "kizuna-demo-admin"})
    assert r.status_code == 422


def _kizuna_input(db_url: str, stdin: str, *args: str):  # noqa: ANN202
    home = get_settings().home
    return run_kizuna(*args, input=stdin, KIZUNA_HOME=str(home), KIZUNA_DATABASE_URL=db_url)


def test_failed_sign_in_rows_do_not_block_other_accounts(app, make_user):
    a = make_user("viewer", "a@example.com")
    b = make_user("viewer", "b@example.com")
    for _ in range(11):
        _login(app, a, "wrong-password-0")
    assert _login(app, b, PASSWORD) == 303


def test_old_failed_attempts_are_forgotten(app, make_user):
    import datetime as dt

    from kizuna.auth.models import SignInThrottle
    from kizuna.db import transaction, utcnow

    email = make_user("viewer")
    long_ago = utcnow() - dt.timedelta(days=2)
    with transaction(app.state.engine) as s:
        s.add(SignInThrottle(key=f"account:{email}", failures=9, first_at=long_ago))
        s.add(SignInThrottle(key="account:guess@example.com", failures=3, first_at=long_ago))
        s.add(
            SignInThrottle(
                key="account:locked@example.com", failures=11, first_at=long_ago, locked_until=signin.FOREVER
            )
        )
    assert _login(app, email, "wrong-password-0") == 401  # 9 from two days ago no longer count towards 10
    assert _login(app, email, PASSWORD) == 303
    with new_session(app.state.engine) as s:
        keys = set(s.scalars(select(SignInThrottle.key)))
    assert "account:guess@example.com" not in keys
    assert "account:locked@example.com" in keys  # a lock stays until it ends or an admin lifts it
