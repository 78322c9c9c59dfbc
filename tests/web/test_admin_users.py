"""Administration (issue 12 item 8): roles, deactivation, password resets and the audit log, on both backends."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kizuna.auth import accounts
from kizuna.auth import service as auth
from kizuna.auth.models import AuditEntry, UiSession, User
from kizuna.db import new_session, transaction
from kizuna.errors import ValidationError
from kizuna.web.i18n import catalog
from tests import factories
from tests.conftest import make_token
from tests.web.conftest import PASSWORD, csrf_of


def audit_rows(engine, action: str) -> list[AuditEntry]:  # noqa: ANN001
    s = new_session(engine)
    try:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))
    finally:
        s.close()


def user_id_of(engine, email: str) -> int:  # noqa: ANN001
    s = new_session(engine)
    try:
        return s.scalar(select(User.id).where(User.email == email))
    finally:
        s.close()


def sign_in(app, email: str, password: str = PASSWORD) -> TestClient:  # noqa: ANN001
    c = TestClient(app)
    r = c.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(c.get("/login").text), "next": "/customers"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return c


def test_role_change_is_audited_and_a_no_change_writes_nothing(session, admin):
    user = factories.user(session, email="s@example.com", role="sales")
    accounts.change_role(session, actor=admin, user_id=user.id, role="manager")
    accounts.change_role(session, actor=admin, user_id=user.id, role="manager")
    session.commit()
    rows = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "user.role_change")))
    assert [(r.entity_id, r.details) for r in rows] == [(str(user.id), {"role": ["sales", "manager"]})]
    with pytest.raises(ValidationError):
        accounts.change_role(session, actor=admin, user_id=user.id, role="owner")


def test_the_last_active_admin_can_neither_demote_nor_deactivate_themselves(session, admin):
    with pytest.raises(ValidationError) as demote:
        accounts.change_role(session, actor=admin, user_id=admin.user_id, role="viewer")
    assert demote.value.key == "error.last_admin"
    with pytest.raises(ValidationError):
        accounts.set_active(session, actor=admin, user_id=admin.user_id, active=False)
    other = factories.user(session, email="second@example.com", role="admin")
    accounts.set_active(session, actor=admin, user_id=other.id, active=False)
    # An inactive admin does not count: the first is still the last active one.
    with pytest.raises(ValidationError):
        accounts.change_role(session, actor=admin, user_id=admin.user_id, role="viewer")
    accounts.set_active(session, actor=admin, user_id=other.id, active=True)
    accounts.change_role(session, actor=admin, user_id=admin.user_id, role="viewer")
    session.commit()
    assert session.get(User, admin.user_id).role == "viewer"


def test_only_admins_manage_users(session, admin):
    sales = factories.user(session, email="s@example.com", role="sales")
    session.commit()
    from kizuna.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        accounts.set_active(session, actor=auth.actor_for(sales), user_id=admin.user_id, active=False)


def test_deactivating_ends_sessions_and_stops_api_tokens_until_reactivated(app, db, ui_client):
    token = make_token(db, "worker@example.com", "sales")
    worker_id = user_id_of(db, "worker@example.com")
    with transaction(db) as s:
        s.get(User, worker_id).password_hash = auth.hasher.hash(PASSWORD)
    browser = sign_in(app, "worker@example.com")
    api = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    assert api.get("/api/v1/me").status_code == 200
    admin = ui_client("admin")
    csrf = csrf_of(admin.get(f"/admin/users/{worker_id}").text)
    r = admin.post(f"/admin/users/{worker_id}/deactivate", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/admin/users/{worker_id}"
    assert api.get("/api/v1/me").status_code == 401
    assert browser.get("/customers", follow_redirects=False).status_code == 303  # back to the sign-in page
    s = new_session(db)
    assert s.scalars(select(UiSession).where(UiSession.user_id == worker_id)).all() == []
    s.close()
    page = admin.get(f"/admin/users/{worker_id}").text
    assert 'data-testid="reactivate"' in page
    assert 'data-testid="notice"' in page  # the change is confirmed on the page it led back to
    r = admin.post(f"/admin/users/{worker_id}/reactivate", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert api.get("/api/v1/me").status_code == 200
    assert [r.details for r in audit_rows(db, "user.deactivate")] == [{"is_active": [True, False]}]
    assert len(audit_rows(db, "user.reactivate")) == 1


def test_the_last_admin_deactivating_themselves_is_refused_on_the_page_in_japanese(app, db, ui_client):
    admin = ui_client("admin")
    me = user_id_of(db, "admin-0@example.com")
    csrf = csrf_of(admin.get(f"/admin/users/{me}").text)
    r = admin.post(f"/admin/users/{me}/deactivate", data={"csrf_token": csrf})
    assert r.status_code == 422
    assert catalog("ja")["error.last_admin"] in r.text
    r = admin.post(f"/admin/users/{me}/role", data={"csrf_token": csrf, "role": "viewer"})
    assert r.status_code == 422
    assert re.search(r'data-testid="error-role">' + re.escape(catalog("ja")["error.last_admin"]), r.text)
    assert admin.get("/customers").status_code == 200  # still an active admin


def test_a_generated_temporary_password_is_shown_once_and_must_be_changed_at_sign_in(app, db, ui_client, make_user):
    email = make_user("support", "helpdesk@example.com")
    user_id = user_id_of(db, email)
    admin = ui_client("admin")
    csrf = csrf_of(admin.get(f"/admin/users/{user_id}").text)
    r = admin.post(
        f"/admin/users/{user_id}/password", data={"csrf_token": csrf, "password": ""}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == f"/admin/users/{user_id}"
    page = admin.get(f"/admin/users/{user_id}").text
    temporary = re.search(r'value="([^"]+)" id="temporary-password-value"', page).group(1)
    assert len(temporary) == accounts.GENERATED_LENGTH and temporary not in r.headers["location"]
    assert "temporary-password-value" not in admin.get(f"/admin/users/{user_id}").text  # once
    [row] = audit_rows(db, "user.password_reset")
    assert row.details == {"generated": True} and temporary not in str(row.details)

    assert _login_status(app, email, PASSWORD) == 401
    user = sign_in(app, email, temporary)
    r = user.get("/customers", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/settings/password"
    page = user.get("/settings/password").text
    assert 'data-testid="must-change"' in page
    r = user.post(
        "/settings/password",
        data={"csrf_token": csrf_of(page), "current_password": temporary, "new_password": "my own pass 42"},
    )
    assert r.status_code == 200
    assert user.get("/customers", follow_redirects=False).status_code == 200


def test_a_typed_temporary_password_that_is_too_weak_is_refused_next_to_the_field(ui_client, db, make_user):
    user_id = user_id_of(db, make_user("viewer", "v@example.com"))
    admin = ui_client("admin")
    csrf = csrf_of(admin.get(f"/admin/users/{user_id}").text)
    r = admin.post(f"/admin/users/{user_id}/password", data={"csrf_token": csrf, "password": "short"})
    assert r.status_code == 422
    assert 'data-testid="error-password">' + catalog("ja")["error.password_too_short"].format(min=10) in r.text


def test_the_api_resets_a_password_and_deactivates_like_the_ui(client, db, make_user):
    user_id = user_id_of(db, make_user("viewer", "v@example.com"))
    r = client.post(f"/api/v1/users/{user_id}/password-reset")
    assert r.status_code == 200 and len(r.json()["temporary_password"]) == accounts.GENERATED_LENGTH
    r = client.post(f"/api/v1/users/{user_id}/password-reset", json={"password": "typed temp 123"})
    assert r.json() == {"temporary_password": "typed temp 123"}
    r = client.post(f"/api/v1/users/{user_id}/deactivate")
    assert r.status_code == 200 and r.json()["is_active"] is False and r.json()["must_change_password"] is True
    assert client.post(f"/api/v1/users/{user_id}/reactivate").json()["is_active"] is True


def _login_status(app, email: str, password: str) -> int:  # noqa: ANN001
    c = TestClient(app)
    r = c.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(c.get("/login").text)},
        follow_redirects=False,
    )
    return r.status_code


def test_failed_sign_ins_are_in_the_audit_log_and_found_by_its_filters(app, db, ui_client, make_user):
    email = make_user("viewer", "target@example.com")
    assert _login_status(app, email, "wrong password 1") == 401
    assert _login_status(app, "nobody@example.com", "wrong password 2") == 401
    admin = ui_client("admin")
    page = admin.get("/admin/audit", params={"action": "user.login_failed"})
    assert page.status_code == 200
    rows = re.findall(r'data-testid="audit-row"', page.text)
    assert len(rows) == 2
    assert "target@example.com" in page.text and "nobody@example.com" in page.text
    only = admin.get("/admin/audit", params={"action": "user.login_failed", "actor": "target"}).text
    assert len(re.findall(r'data-testid="audit-row"', only)) == 1
    user_id = user_id_of(db, email)
    by_entity = admin.get("/admin/audit", params={"entity_type": "user", "entity_id": str(user_id)}).text
    assert 'data-action="user.login_failed">ログイン失敗<' in by_entity and "nobody@example.com" not in by_entity


def test_audit_details_show_japanese_as_text_and_dates_filter_in_local_days(app, db, ui_client):
    admin = ui_client("admin")
    csrf = csrf_of(admin.get("/settings/tokens").text)
    admin.post("/settings/tokens", data={"csrf_token": csrf, "name": "山田さんの連携"})
    page = admin.get("/admin/audit", params={"action": "token.create"}).text
    details = re.search(r'data-testid="audit-details">([^<]*)<', page).group(1)
    assert "山田さんの連携" in details and "\\u" not in details
    today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=9))).date()
    same_day = {"action": "token.create", "date_from": today.isoformat(), "date_to": today.isoformat()}
    assert "山田さんの連携" in admin.get("/admin/audit", params=same_day).text
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    later = admin.get("/admin/audit", params={"action": "token.create", "date_from": tomorrow}).text
    assert "山田さんの連携" not in later
    bad = admin.get("/admin/audit", params={"date_from": "2024-13-45"})
    assert bad.status_code == 422
    assert f'data-testid="error-date_from">{catalog("ja")["error.date_parsing"]}<' in bad.text
    assert 'value="2024-13-45"' in bad.text


def test_the_audit_log_pages_with_its_filters_kept(app, db, ui_client):
    from kizuna.auth import audit
    from kizuna.auth.permissions import Actor

    with transaction(db) as s:
        for i in range(105):
            audit.record(s, actor=Actor.system("bulk"), action="test.bulk", entity_type="thing", entity_id=i)
    admin = ui_client("admin")
    first = admin.get("/admin/audit", params={"action": "test.bulk"}).text
    assert len(re.findall(r'data-testid="audit-row"', first)) == 100
    next_link = re.search(r'href="(/admin/audit\?[^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert "action=test.bulk" in next_link
    second = admin.get(next_link).text
    assert len(re.findall(r'data-testid="audit-row"', second)) == 5


def test_users_pages_are_for_admins_only(ui_client, db):
    viewer = ui_client("viewer")
    assert viewer.get("/admin/users/1").status_code == 403
    assert viewer.get("/admin/audit").status_code == 403
    admin = ui_client("admin")
    assert admin.get("/admin/users/999999").status_code == 404


def test_roles_and_deactivation_from_the_cli(tmp_path):
    from tests.test_cli import _kizuna

    home = tmp_path / "home"
    assert _kizuna(home, "users", "create", "--email", "boss@example.jp", "--role", "admin").returncode == 0
    assert _kizuna(home, "users", "create", "--email", "mika@example.jp", "--role", "sales").returncode == 0
    done = _kizuna(home, "users", "set-role", "--email", "mika@example.jp", "--role", "manager")
    assert done.returncode == 0 and "manager" in done.stdout
    assert _kizuna(home, "users", "deactivate", "--email", "mika@example.jp").returncode == 0
    listed = _kizuna(home, "users", "list").stdout
    assert re.search(r"mika@example.jp\s+manager\s+disabled", listed)
    assert _kizuna(home, "users", "reactivate", "--email", "mika@example.jp").returncode == 0
    last = _kizuna(home, "users", "deactivate", "--email", "boss@example.jp")
    assert last.returncode != 0 and "last active admin" in (last.stdout + last.stderr)
