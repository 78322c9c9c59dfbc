"""The messaging pages, signed in through the login form: templates, suppressions, the message log, settings."""

from __future__ import annotations

import re

from sqlalchemy import select

from kizuna.db import transaction
from kizuna.messaging import settings
from kizuna.messaging.models import Suppression, Template
from tests import factories
from tests.messaging.conftest import consented_customer, queue_mail, send_all
from tests.web.conftest import csrf_of


def test_a_marketer_writes_a_template_sees_errors_by_the_field_and_previews_it(db, ui_client, mail_ready):
    with transaction(db) as s:
        c = factories.customer(s, email="a@example.jp", family_name="山田", given_name="花子")
    ui = ui_client("marketer")
    page = ui.get("/messaging/templates/new")
    assert page.status_code == 200
    token = csrf_of(page.text)
    bad = ui.post(
        "/messaging/templates/new",
        data={"csrf_token": token, "name": "spring", "channel": "email", "kind": "marketing",
              "subject": "{{ customer.nickname }}", "html": "<p>x</p>"},
    )  # fmt: skip
    assert bad.status_code == 422
    assert 'id="err-subject"' in bad.text and "nickname" in bad.text
    assert 'value="spring"' in bad.text  # what was typed stays
    made = ui.post(
        "/messaging/templates/new",
        data={"csrf_token": token, "name": "spring", "channel": "email", "kind": "marketing",
              "subject": "{{ customer.given_name }}さんへ",
              "html": "<p>{{ customer.family_name }}様 <script>x()</script></p>"},
        follow_redirects=False,
    )  # fmt: skip
    assert made.status_code == 303
    shown = ui.get(made.headers["location"])
    assert 'data-testid="preview-subject">花子さんへ<' in shown.text
    frame = re.search(r'src="(/messaging/templates/\d+/preview.html\?customer_id=\d+)"', shown.text).group(1)
    html = ui.get(frame)
    assert "山田様" in html.text and "絆ストア" in html.text
    # A template's markup runs nowhere: the frame's document is sandboxed without scripts.
    assert (
        "sandbox" in html.headers["content-security-policy"]
        and "script-src" not in html.headers["content-security-policy"]
    )
    assert ui.get("/messaging/templates").status_code == 200
    assert str(c.id) in shown.text
    with transaction(db) as s:
        assert s.scalars(select(Template)).one().name == "spring"

    viewer = ui_client("viewer")
    refused = viewer.post(
        made.headers["location"], data={"csrf_token": csrf_of(viewer.get("/messaging/templates").text), "name": "x"}
    )
    assert refused.status_code == 403, refused.text[-1500:]


def test_suppression_list_add_remove_and_export(db, ui_client):
    ui = ui_client("manager")
    page = ui.get("/messaging/suppressions")
    token = csrf_of(page.text)
    added = ui.post(
        "/messaging/suppressions",
        data={"csrf_token": token, "channel": "email", "address": "Stop@Example.jp", "note": "電話で依頼"},
        follow_redirects=False,
    )  # noqa: E501
    assert added.status_code == 303
    listed = ui.get("/messaging/suppressions")
    assert "stop@example.jp" in listed.text and "電話で依頼" in listed.text
    exported = ui.get("/messaging/suppressions.csv")
    assert exported.status_code == 200 and "stop@example.jp" in exported.content.decode("utf-8-sig")
    with transaction(db) as s:
        entry = s.scalars(select(Suppression)).one()
    removed = ui.post(f"/messaging/suppressions/{entry.id}/delete", data={"csrf_token": token}, follow_redirects=False)
    assert removed.status_code == 303
    with transaction(db) as s:
        assert s.scalar(select(Suppression)) is None
    no_csrf = ui.post("/messaging/suppressions", data={"address": "x@example.jp"})
    assert no_csrf.status_code == 403


def test_message_log_and_the_customer_timeline(db, ui_client, mail_ready):
    with transaction(db) as s:
        c = consented_customer(s, "log@example.jp")
        queue_mail(s, c.id, "promo")
        other = factories.customer(s, email="nope@example.jp")
        queue_mail(s, other.id, "promo-2")
    send_all(db)
    ui = ui_client("viewer")
    log = ui.get(f"/messaging/messages?customer_id={other.id}")
    assert log.status_code == 200 and "no_consent" in log.text
    detail = ui.get("/messaging/messages/2")
    assert "no consent decision" in detail.text
    c360 = ui.get(f"/customers/{c.id}")
    assert "/messaging/messages/1" in c360.text


def test_the_email_settings_page_keeps_the_password_secret(db, ui_client):
    assert ui_client("marketer").get("/admin/channels/email").status_code == 403
    ui = ui_client("admin")
    page = ui.get("/admin/channels/email")
    token = csrf_of(page.text)
    form = {
        "csrf_token": token, "from_name": "絆ストア", "from_address": "news@shop.example.com",
        "postal_address": "東京都", "complaints_contact": "support@shop.example.com", "smtp_host": "mail.example.com",
        "smtp_port": "587", "smtp_security": "starttls", "smtp_username": "kizuna", "smtp_password": "hunter2",
        "tracking": "on", "cap_count": "2", "cap_days": "7", "quiet_start": "21:00", "quiet_end": "08:00",
    }  # fmt: skip
    saved = ui.post("/admin/channels/email", data=form, follow_redirects=False)
    assert saved.status_code == 303
    shown = ui.get("/admin/channels/email")
    assert "hunter2" not in shown.text and "mail.example.com" in shown.text and 'value="21:00"' in shown.text
    with transaction(db) as s:
        assert settings.secret(s, "email", "smtp_password") == "hunter2"
        assert settings.rules(s, "email").cap_count == 2
    # Saving again with the password field empty keeps it; the remove box removes it.
    ui.post("/admin/channels/email", data={**form, "smtp_password": ""}, follow_redirects=False)
    with transaction(db) as s:
        assert settings.secret(s, "email", "smtp_password") == "hunter2"
    ui.post("/admin/channels/email", data={**form, "smtp_password": "", "remove_smtp_password": "on"})
    with transaction(db) as s:
        assert settings.secret(s, "email", "smtp_password") is None
    bad = ui.post("/admin/channels/email", data={**form, "quiet_end": ""})
    assert bad.status_code == 422 and "quiet" in bad.text


def test_every_code_the_pages_show_has_a_label_in_both_languages():
    from kizuna.messaging.models import CHANNELS, KINDS, STATUSES
    from kizuna.web.i18n import LANGUAGES, catalog

    codes = {
        "channel": CHANNELS,
        "kind": KINDS,
        "status": STATUSES,
        "suppression": ("manual", "hard_bounce", "complaint", "unsubscribe"),
        "stamp": ("sent_at", "opened_at", "clicked_at", "unsubscribed_at", "bounced_at", "complained_at"),
    }
    for lang in LANGUAGES:
        missing = [f"messaging.{group}.{code}" for group, values in codes.items() for code in values]
        assert [key for key in missing if key not in catalog(lang)] == [], lang


def test_a_template_with_its_own_sender_sends_from_it(db, ui_client, mail_ready):

    ui = ui_client("marketer")
    token = csrf_of(ui.get("/messaging/templates/new").text)
    fields = {"csrf_token": token, "name": "support-reply", "channel": "email", "kind": "service",
              "subject": "お問い合わせありがとうございます", "html": "<p>受け付けました</p>",
              "from_name": "絆ストア サポート", "reply_to": "help@shop.example.com"}  # fmt: skip
    bad = ui.post("/messaging/templates/new", data={**fields, "from_address": "not-an-address"})
    assert bad.status_code == 422 and 'id="err-from_address"' in bad.text
    assert '<details open data-testid="template-sender">' in bad.text  # the section with the error is shown open
    made = ui.post(
        "/messaging/templates/new", data={**fields, "from_address": "Support@Shop.example.com"}, follow_redirects=False
    )
    assert made.status_code == 303
    with transaction(db) as s:
        template = s.scalars(select(Template).where(Template.name == "support-reply")).one()
        assert (template.from_name, template.from_address) == ("絆ストア サポート", "support@shop.example.com")
        c = consented_customer(s, "asker@example.jp")
        queue_mail(s, c.id, "reply-1", kind="service", template_id=template.id)
    send_all(db)
    [got] = mail_ready.to("asker@example.jp")
    assert got.mail["From"].addresses[0].addr_spec == "support@shop.example.com"
    assert got.mail["From"].addresses[0].display_name == "絆ストア サポート"
    assert str(got.mail["Reply-To"]) == "help@shop.example.com"
    assert got.envelope_from == "news@shop.example.com"  # bounces still come back to the settings' address
