"""Changing customers in the browser: create, edit, stale edits, delete, consent decisions and identities."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from kizuna.auth.models import AuditEntry
from kizuna.customers.models import Consent, Customer, CustomerIdentity
from kizuna.db import transaction
from tests import factories
from tests.web.conftest import csrf_of


def _post(client, path: str, data: dict, page: str | None = None):  # noqa: ANN001, ANN202
    token = csrf_of(client.get(page or path).text)
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


def test_a_customer_created_in_the_form_is_stored_normalised_and_audited(ui_client, db):
    client = ui_client("sales")
    r = _post(
        client,
        "/customers/new",
        {
            "family_name": "山田",
            "given_name": "花子",
            "family_name_kana": "やまだ",
            "given_name_kana": "ハナコ",
            "email": "Hanako@Example.JP",
            "phone": "０９０-１２３４-５６７８",
            "lifecycle_stage": "prospect",
            "tags": "展示会、VIP, 展示会",
        },
    )
    assert r.status_code == 303
    customer_id = int(r.headers["location"].rsplit("/", 1)[1])
    with transaction(db) as s:
        c = s.get(Customer, customer_id)
        assert (c.full_name, c.full_name_kana, c.email, c.phone) == (
            "山田 花子",
            "ヤマダ ハナコ",
            "hanako@example.jp",
            "+819012345678",
        )
        assert c.lifecycle_stage == "prospect"
        assert sorted(t.name for t in c.tags) == ["VIP", "展示会"]
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.customer_id == customer_id)).all()
        assert "customer.create" in actions


def test_invalid_input_is_shown_next_to_its_field_in_japanese_and_kept(ui_client, db):
    client = ui_client("sales")
    r = _post(client, "/customers/new", {"family_name": "佐藤", "email": "not-an-address", "phone": "12"})
    assert r.status_code == 422
    assert 'data-testid="error-email"' in r.text and "メールアドレスとして正しくありません" in r.text
    assert 'data-testid="error-phone"' in r.text and "電話番号として正しくありません" in r.text
    assert 'value="佐藤"' in r.text and 'value="not-an-address"' in r.text  # what the user typed is kept
    assert 'aria-invalid="true"' in r.text
    with transaction(db) as s:
        assert s.scalar(select(Customer.id)) is None  # nothing half-saved


def test_edit_changes_only_what_the_form_sent_and_clears_emptied_fields(ui_client, db):
    with transaction(db) as s:
        c = factories.customer(s, family_name="鈴木", email="suzuki@example.jp", city="横浜市", tags=["既存"])
        cid = c.id
    client = ui_client("sales")
    page = client.get(f"/customers/{cid}/edit")
    assert page.status_code == 200 and 'value="suzuki@example.jp"' in page.text
    version = re.search(r'name="version" value="(\d+)"', page.text).group(1)
    r = client.post(
        f"/customers/{cid}/edit",
        data={
            "csrf_token": csrf_of(page.text),
            "version": version,
            "family_name": "鈴木",
            "given_name": "一郎",
            "email": "suzuki@example.jp",
            "city": "",
            "lifecycle_stage": "customer",
            "tags": "既存, 新規",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    with transaction(db) as s:
        c = s.get(Customer, cid)
        assert c.full_name == "鈴木 一郎" and c.city is None
        assert sorted(t.name for t in c.tags) == sorted(["既存", "新規"])


def test_a_stale_form_says_who_changed_what_and_keeps_the_users_input(ui_client, make_user, db):
    with transaction(db) as s:
        c = factories.customer(s, family_name="高橋", email="t@example.jp")
        cid = c.id
    first = ui_client("sales")
    page = first.get(f"/customers/{cid}/edit")
    version = re.search(r'name="version" value="(\d+)"', page.text).group(1)
    # Someone else saves a change in between.
    other = ui_client("manager")
    assert (
        _post(
            other,
            f"/customers/{cid}/edit",
            {"version": version, "email": "new@example.jp"},
            page=f"/customers/{cid}/edit",
        ).status_code
        == 303
    )
    r = first.post(
        f"/customers/{cid}/edit",
        data={
            "csrf_token": csrf_of(page.text),
            "version": version,
            "family_name": "高橋",
            "given_name": "次郎",
            "email": "t@example.jp",
        },
        follow_redirects=False,
    )
    assert r.status_code == 409
    stale = re.search(r'data-testid="stale-changes">(.*?)</div>', r.text, re.S).group(1)
    assert "manager-1@example.com" in stale and "（メール）" in stale  # who, and which field
    assert 'value="次郎"' in r.text  # the user's input is kept
    with transaction(db) as s:
        assert s.get(Customer, cid).email == "new@example.jp"  # nothing of the stale form was saved
    # Saving again (the form now carries the current version) applies the user's values.
    new_version = re.search(r'name="version" value="(\d+)"', r.text).group(1)
    again = first.post(
        f"/customers/{cid}/edit",
        data={"csrf_token": csrf_of(r.text), "version": new_version, "given_name": "次郎"},
        follow_redirects=False,
    )
    assert again.status_code == 303
    with transaction(db) as s:
        assert s.get(Customer, cid).given_name == "次郎"


def test_quick_edit_on_the_360_page_sets_owner_stage_and_tags(ui_client, make_user, db):
    owner_email = make_user("sales", "owner@example.com", name="担当 太郎")
    with transaction(db) as s:
        c = factories.customer(s, family_name="伊藤", lifecycle_stage="lead")
        owner_id = s.scalar(select(Customer.owner_id).where(Customer.id == c.id))
        cid, version = c.id, c.version
        from kizuna.auth.models import User

        owner_id = s.scalar(select(User.id).where(User.email == owner_email))
    client = ui_client("sales")
    page = client.get(f"/customers/{cid}")
    assert 'data-testid="quick-edit"' in page.text and "担当 太郎" in page.text
    r = _post(
        client,
        f"/customers/{cid}/edit",
        {"version": version, "owner_id": owner_id, "lifecycle_stage": "customer", "tags": "DM可", "back": "360"},
        page=f"/customers/{cid}",
    )
    assert r.status_code == 303 and r.headers["location"].startswith(f"/customers/{cid}")
    # The next page says it was saved, once.
    assert "保存しました。" in client.get(r.headers["location"]).text
    assert 'data-testid="notice"' not in client.get(r.headers["location"]).text
    with transaction(db) as s:
        c = s.get(Customer, cid)
        assert (c.owner_id, c.lifecycle_stage, [t.name for t in c.tags]) == (owner_id, "customer", ["DM可"])
        assert c.family_name == "伊藤"  # fields the quick form did not send are untouched


def test_delete_asks_first_then_deletes_and_audits(ui_client, db):
    with transaction(db) as s:
        cid = factories.customer(s, family_name="削除").id
    client = ui_client("manager")
    confirm = client.get(f"/customers/{cid}/delete")
    assert confirm.status_code == 200 and 'data-testid="confirm-delete"' in confirm.text
    r = client.post(
        f"/customers/{cid}/delete",
        data={
            "csrf_token": csrf_of(confirm.text),
            "version": re.search(r'name="version" value="(\d+)"', confirm.text).group(1),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/customers?deleted={cid}"
    assert f"#{cid}" in client.get(r.headers["location"]).text
    with transaction(db) as s:
        assert s.get(Customer, cid) is None
        assert s.scalar(select(AuditEntry.id).where(AuditEntry.action == "customer.delete")) is not None


def test_roles_without_the_right_see_no_edit_controls_and_are_refused(ui_client, db):
    with transaction(db) as s:
        cid = factories.customer(s, family_name="閲覧").id
    viewer = ui_client("viewer")
    page = viewer.get(f"/customers/{cid}")
    assert 'data-testid="edit-customer"' not in page.text and 'data-testid="consent-form"' not in page.text
    assert viewer.get(f"/customers/{cid}/edit").status_code == 403
    sales = ui_client("sales")
    assert sales.get(f"/customers/{cid}/delete").status_code == 403  # sales may edit, not delete


def test_an_opt_out_taken_by_phone_is_recorded_with_its_evidence_and_history(ui_client, db):
    with transaction(db) as s:
        c = factories.customer(s, family_name="中村", email="n@example.jp")
        factories.consent(s, customer_id=c.id, channel="email", status="granted", method="web_form")
        cid = c.id
    client = ui_client("support")
    r = _post(
        client,
        f"/customers/{cid}/consents",
        {
            "channel": "email",
            "purpose": "marketing",
            "status": "withdrawn",
            "method": "phone",
            "source": "コールセンター",
            "evidence": "本人より電話で配信停止の依頼。\n受付番号 A-123",
        },
        page=f"/customers/{cid}",
    )
    assert r.status_code == 303
    with transaction(db) as s:
        decisions = s.scalars(select(Consent).where(Consent.customer_id == cid).order_by(Consent.id)).all()
        assert [d.status for d in decisions] == ["granted", "withdrawn"]
        assert (decisions[1].method, decisions[1].source) == ("phone", "コールセンター")
    from kizuna.customers.consent import has_consent

    with transaction(db) as s:
        assert not has_consent(s, customer_id=cid, channel="email")
    page = client.get(f"/customers/{cid}").text
    history = re.search(r'data-testid="consent-history">(.*?)</details>', page, re.S).group(1)
    assert (
        "電話" in history and "コールセンター" in history and "受付番号 A-123" in history and "Web フォーム" in history
    )


def test_a_consent_form_with_a_future_date_is_refused_next_to_the_field(ui_client, db):
    with transaction(db) as s:
        cid = factories.customer(s, family_name="未来").id
    client = ui_client("support")
    r = _post(
        client,
        f"/customers/{cid}/consents",
        {
            "channel": "email",
            "purpose": "marketing",
            "status": "granted",
            "method": "web_form",
            "recorded_at": "2999-01-01T10:00",
        },
        page=f"/customers/{cid}",
    )
    assert r.status_code == 422
    assert 'data-testid="error-recorded_at"' in r.text and "未来の日時" in r.text
    # The refusal is announced at the top of the page too, with a link down to the form.
    top = r.text.split('data-testid="form-refused"', 1)[1].split("</p>", 1)[0]
    assert 'href="#consents"' in top
    with transaction(db) as s:
        assert s.scalar(select(Consent.id).where(Consent.customer_id == cid)) is None


def test_identities_are_added_and_removed_from_the_360_page(ui_client, db):
    with transaction(db) as s:
        cid = factories.customer(s, family_name="識別", email="id@example.jp").id
    client = ui_client("sales")
    r = _post(
        client,
        f"/customers/{cid}/identities",
        {"kind": "line_user_id", "value": "U" + "a" * 32},
        page=f"/customers/{cid}",
    )
    assert r.status_code == 303
    page = client.get(f"/customers/{cid}").text
    assert "U" + "a" * 32 in page
    bad = _post(client, f"/customers/{cid}/identities", {"kind": "email", "value": "nope"}, page=f"/customers/{cid}")
    assert bad.status_code == 422 and 'data-testid="error-value"' in bad.text or "nope" in bad.text
    with transaction(db) as s:
        line = s.scalar(
            select(CustomerIdentity).where(CustomerIdentity.customer_id == cid, CustomerIdentity.kind == "line_user_id")
        )
        line_id = line.id
    r = _post(client, f"/customers/{cid}/identities/{line_id}/delete", {}, page=f"/customers/{cid}")
    assert r.status_code == 303
    with transaction(db) as s:
        assert s.get(CustomerIdentity, line_id) is None


TEXTS = {
    "ja": {"bad_email": "メールアドレスとして正しくありません", "sapporo": "札幌市"},
    "en": {"bad_email": "is not a valid e-mail address", "sapporo": "Sapporo"},
}


@pytest.mark.browser
@pytest.mark.parametrize(("lang", "width"), [("ja", 1400), ("ja", 390), ("en", 390)])
def test_create_edit_and_record_consent_in_the_browser(sign_in, live_server, lang, width):
    texts = TEXTS[lang]
    page = sign_in("manager")
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server}/lang/{lang}?next=/customers")
    page.click("[data-testid=new-customer]")
    page.fill("#f-family_name", "渡辺")
    page.fill("#f-given_name", "美咲")
    page.fill("#f-email", "bad-address")
    page.click("[data-testid=save-customer]")
    assert texts["bad_email"] in page.inner_text("[data-testid=error-email]")
    assert page.input_value("#f-family_name") == "渡辺"
    page.fill("#f-email", "misaki@example.jp")
    page.click("[data-testid=save-customer]")
    page.wait_for_url(re.compile(r".*/customers/\d+$"))
    assert page.inner_text("[data-testid=customer-name]") == "渡辺 美咲"
    page.click("[data-testid=consent-record-toggle]")
    page.select_option("#f-status", "withdrawn")
    page.select_option("#f-method", "phone")
    page.fill("#f-evidence", "電話で停止依頼")
    page.click("[data-testid=consent-submit]")
    page.wait_for_url(re.compile(r".*#consents$"))
    page.click("[data-testid=consent-history] summary")
    assert "電話で停止依頼" in page.inner_text("[data-testid=consent-history]")
    page.click("[data-testid=edit-customer]")
    page.fill("#f-city", texts["sapporo"])
    page.click("[data-testid=save-customer]")
    page.wait_for_url(re.compile(r".*/customers/\d+$"))
    assert texts["sapporo"] in page.inner_text("[data-testid=attributes]")
    overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the 360 page overflows by {overflow}px at {width}px"


def test_bulk_tag_and_owner_change_each_selected_customer_with_its_own_audit_entry(ui_client, make_user, db):
    owner_email = make_user("sales", "bulk-owner@example.com")
    with transaction(db) as s:
        from kizuna.auth.models import User

        a = factories.customer(s, family_name="一", tags=["既存"])
        b = factories.customer(s, family_name="二")
        untouched = factories.customer(s, family_name="三")
        ids = [a.id, b.id]
        untouched_id = untouched.id
        owner_id = s.scalar(select(User.id).where(User.email == owner_email))
    client = ui_client("marketer")
    token = csrf_of(client.get("/customers").text)
    r = client.post(
        "/customers/bulk",
        data={
            "csrf_token": token,
            "ids": [str(i) for i in ids],
            "action": "tag_add",
            "tag": "秋キャンペーン",
            "back": "/customers?q=x",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/customers?q=x&bulk_done=2"
    r = client.post(
        "/customers/bulk",
        data={"csrf_token": token, "ids": [str(i) for i in ids], "action": "assign_owner", "owner_id": str(owner_id)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with transaction(db) as s:
        for cid in ids:
            c = s.get(Customer, cid)
            assert "秋キャンペーン" in [t.name for t in c.tags] and c.owner_id == owner_id
        assert s.get(Customer, untouched_id).tags == [] and s.get(Customer, untouched_id).owner_id is None
        entries = s.scalars(select(AuditEntry.customer_id).where(AuditEntry.action == "customer.update")).all()
        assert sorted(entries) == sorted(ids * 2)
    # Nothing selected: a message in the user's language, nothing changed.
    r = client.post(
        "/customers/bulk", data={"csrf_token": token, "action": "tag_add", "tag": "x"}, follow_redirects=False
    )
    assert r.status_code == 303 and "bulk_error=" in r.headers["location"]
    from urllib.parse import parse_qs, urlsplit

    assert parse_qs(urlsplit(r.headers["location"]).query)["bulk_error"] == ["no_selection"]
    assert "顧客を 1 件以上選んでください。" in client.get(r.headers["location"]).text
    # The URL names a message; it cannot make the page say something else.
    spoofed = client.get("/customers?bulk_error=" + "お客様のアカウントは停止されました")
    assert "お客様のアカウントは停止されました" not in spoofed.text.split("<main", 1)[1]


def test_a_notice_names_only_known_messages(ui_client):
    client = ui_client("viewer")
    client.cookies.set("kizuna_notice", "account_suspended")
    page = client.get("/customers")
    assert page.status_code == 200 and 'data-testid="notice"' not in page.text


def test_bulk_change_through_the_api_is_all_or_nothing(client, db):
    with transaction(db) as s:
        aid = factories.customer(s, family_name="甲").id
    r = client.post("/api/v1/customers/bulk", json={"ids": [aid, 999999], "add_tags": ["T"]})
    assert r.status_code == 404
    with transaction(db) as s:
        assert s.get(Customer, aid).tags == []
    r = client.post("/api/v1/customers/bulk", json={"ids": [aid], "add_tags": ["T"]})
    assert r.status_code == 200 and r.json() == {"changed": 1}


def test_export_of_the_checked_rows_only(ui_client, db):
    with transaction(db) as s:
        aid = factories.customer(s, family_name="出力", email="out1@example.jp").id
        factories.customer(s, family_name="対象外", email="out2@example.jp")
    client = ui_client("marketer")
    token = csrf_of(client.get("/customers").text)
    r = client.post("/customers/export.csv", data={"csrf_token": token, "ids": [str(aid)]})
    assert r.status_code == 200
    assert "out1@example.jp" in r.text and "out2@example.jp" not in r.text


@pytest.mark.browser
def test_select_rows_and_tag_them_from_the_bulk_bar(sign_in, live_server, db):
    with transaction(db) as s:
        for name in ("一郎", "二郎", "三郎"):
            factories.customer(s, family_name="選択", given_name=name)
    page = sign_in("marketer")
    page.goto(f"{live_server}/lang/ja?next=/customers")
    page.check("[data-testid=select-all]")
    assert page.inner_text("[data-bulk-count]") == "3 件を選択中"
    page.locator("[data-testid=select-row]").first.uncheck()
    assert page.inner_text("[data-bulk-count]") == "2 件を選択中"
    page.select_option("[data-testid=bulk-action]", "tag_add")
    page.fill("[data-testid=bulk-tag]", "年末DM")
    page.click("[data-testid=bulk-apply]")
    assert "2 件の顧客を変更しました" in page.inner_text("[data-testid=bulk-done]")
    with transaction(db) as s:
        tagged = [c for c in s.scalars(select(Customer)) if "年末DM" in [t.name for t in c.tags]]
        assert len(tagged) == 2
