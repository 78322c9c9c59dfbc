"""The messaging API: templates checked at save and previewed with a real customer, suppressions with their CSV,
bounces and complaints, the complaint rate, the message log and the email settings."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select, update

from kizuna.auth.models import AuditEntry
from kizuna.customers.models import Consent
from kizuna.db import transaction
from kizuna.messaging import bounces, tracking
from kizuna.messaging.models import Message, Suppression
from tests import factories
from tests.messaging.conftest import consented_customer, queue_mail, send_all

API = "/api/v1/messaging"
GOOD = {
    "name": "welcome",
    "subject": "{{ customer.given_name | default('お客様') }}さん、ようこそ",
    "html": "<p>{{ customer.family_name }}様</p>{% for p in recommendations(2) %}<p>{{ p.name }}</p>{% endfor %}",
}


def test_a_template_is_checked_when_saved_and_each_problem_is_named(db, client):
    with transaction(db) as s:
        factories.customer(s, email="a@example.jp", given_name="花子")
    cases = [
        ({"html": "<p>{% if %}</p>"}, "html line 1"),
        ({"subject": "{{ customr.given_name }}"}, "unknown variable customr"),
        ({"html": "<p>{{ customer.given_nmae }}</p>"}, "given_nmae"),
        ({"html": "<p>{{ customer.attributes.plan }}</p>"}, "plan"),
        ({"html": "{{ customer.__class__.__mro__ }}"}, "html"),
        ({"html": "{{ lipsum() }}"}, "lipsum"),
    ]
    for change, expected in cases:
        r = client.post(f"{API}/templates", json={**GOOD, **change})
        assert r.status_code == 422, change
        assert expected in r.text, (change, r.text)
    # A fallback makes a missing value fine, and a creator's context is accepted unseen.
    ok = {**GOOD, "text": "{{ customer.attributes.plan | default('basic') }} {{ context.order_no }}"}
    r = client.post(f"{API}/templates", json=ok)
    assert r.status_code == 201, r.text
    assert client.post(f"{API}/templates", json=ok).status_code == 409


def test_preview_with_a_real_customer_and_edits_are_versioned_and_audited(db, client, mail_ready):
    with transaction(db) as s:
        named = factories.customer(s, email="a@example.jp", family_name="山田", given_name="花子")
        anonymous = factories.customer(s, email="b@example.jp", family_name="佐藤", given_name=None)
    created = client.post(f"{API}/templates", json=GOOD).json()
    shown = client.post(f"{API}/templates/{created['id']}/preview", params={"customer_id": named.id}).json()
    assert shown["subject"] == "花子さん、ようこそ"
    assert "山田様" in shown["html"] and "絆ストア" in shown["text"] and "配信を停止" in shown["html"]
    fallback = client.post(f"{API}/templates/{created['id']}/preview", params={"customer_id": anonymous.id}).json()
    assert fallback["subject"] == "お客様さん、ようこそ"
    unsaved = client.post(
        f"{API}/preview", json={"customer_id": named.id, "kind": "service", "subject": "{{ customer.email }}"}
    )
    assert unsaved.json()["subject"] == "a@example.jp" and "配信を停止" not in unsaved.json()["text"]

    edited = client.patch(f"{API}/templates/{created['id']}", json={"subject": "新しい件名", "version": 1})
    assert edited.status_code == 200 and edited.json()["version"] == 2
    stale = client.patch(f"{API}/templates/{created['id']}", json={"subject": "x", "version": 1})
    assert stale.status_code == 409
    with transaction(db) as s:
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "template")))
        assert actions == ["template.create", "template.update"]
        queue_mail(s, named.id, "uses-template", template_id=created["id"])
    refused = client.delete(f"{API}/templates/{created['id']}")
    assert refused.status_code == 409 and "waiting to be sent" in refused.text


def test_a_template_queued_message_is_rendered_for_each_customer(db, client, mail_ready):
    with transaction(db) as s:
        c = consented_customer(s, "t@example.jp", family_name="田中", given_name="一郎")
    template = client.post(f"{API}/templates", json={**GOOD, "text": "{{ context.note }}"}).json()
    with transaction(db) as s:
        queue_mail(s, c.id, "t1", template_id=template["id"], context={"note": "ご注文ありがとうございます"})
    send_all(db)
    [got] = mail_ready.received
    assert str(got.mail["Subject"]) == "一郎さん、ようこそ"
    assert "田中様" in got.part("html") and "ご注文ありがとうございます" in got.part("plain")


def test_suppressions_csv_export_neutralises_formulas(db, client):
    r = client.post(f"{API}/suppressions", json={"address": '=HYPERLINK("http://x")@example.jp', "note": "+cmd"})
    assert r.status_code == 201
    client.post(f"{API}/suppressions", json={"address": "Plain@Example.jp"})
    listed = client.get(f"{API}/suppressions").json()
    assert [s["address"] for s in listed] == ["plain@example.jp", '=hyperlink("http://x")@example.jp']
    exported = client.get(f"{API}/suppressions.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    cells = {row["address"]: row["note"] for row in rows}
    assert cells == {"plain@example.jp": "", '\'=hyperlink("http://x")@example.jp': "'+cmd"}
    assert client.delete(f"{API}/suppressions/{listed[0]['id']}").status_code == 204
    assert len(client.get(f"{API}/suppressions").json()) == 1


def test_bounces_and_complaints_suppress_and_a_complaint_withdraws_consent(db, client, client_as, mail_ready):
    with transaction(db) as s:
        hard = consented_customer(s, "hard@example.jp")
        soft = consented_customer(s, "soft@example.jp")
        angry = consented_customer(s, "angry@example.jp")
        for c in (hard, soft, angry):
            queue_mail(s, c.id, f"campaign:5:customer:{c.id}", source="campaign", source_id=5)
    send_all(db)
    with transaction(db) as s:
        sent = {m.customer_id: m for m in s.scalars(select(Message))}
    reports = {
        "reports": [
            {"type": "bounce", "bounce_type": "hard", "message_id": f"<{sent[hard.id].delivery_key}@shop.example.com>",
             "reason": "550 5.1.1 user unknown"},
            {"type": "bounce", "bounce_type": "soft", "email": "soft@example.jp", "reason": "452 mailbox full"},
            {"type": "complaint", "message_id": str(sent[angry.id].id)},
            {"type": "bounce", "message_id": "<nobody@nowhere>"},
        ]
    }  # fmt: skip
    assert client_as("viewer").post(f"{API}/bounces", json=reports).status_code == 403
    r = client.post(f"{API}/bounces", json=reports)
    assert r.status_code == 200, r.text
    assert r.json() == {"recorded": 3, "suppressed": 2, "unmatched": [3]}
    with transaction(db) as s:
        listed = {x.address: x.reason for x in s.scalars(select(Suppression))}
        assert listed == {"hard@example.jp": "hard_bounce", "angry@example.jp": "complaint"}
        decision = s.scalars(select(Consent).where(Consent.customer_id == angry.id).order_by(Consent.id.desc())).first()
        assert (decision.status, decision.method) == ("withdrawn", "complaint")
        stamped = {m.customer_id: m for m in s.scalars(select(Message))}
        assert stamped[hard.id].bounced_at is not None and stamped[soft.id].bounced_at is None
        assert stamped[angry.id].complained_at is not None
        queue_mail(s, hard.id, "receipt-hard", kind="service")
    send_all(db)
    with transaction(db) as s:
        receipt = s.scalars(select(Message).where(Message.key == "receipt-hard")).one()
    assert (receipt.status, receipt.reason) == ("skipped", "suppressed")  # a hard bounce stops service mail too

    rate = client.get(f"{API}/complaint-rate", params={"source": "campaign", "source_id": 5}).json()
    assert rate == {"source": "campaign", "source_id": 5, "sent": 3, "complaints": 1, "rate": 1 / 3, "level": "pause"}


def test_complaint_rate_levels(db, session):
    with transaction(db) as s:
        c = factories.customer(s, email="x@example.jp")
        for n in range(2000):
            queue_mail(s, c.id, f"campaign:9:{n}", source="campaign", source_id=9)
        s.flush()
        s.execute(update(Message).values(status="sent"))
    assert bounces.complaint_rate(session, "campaign", 9).level == "ok"
    with transaction(db) as s:
        s.execute(update(Message).where(Message.id <= 2).values(complained_at=Message.created_at))
    assert (
        bounces.complaint_rate(session, "campaign", 9).rate,
        bounces.complaint_rate(session, "campaign", 9).level,
    ) == (
        0.001,
        "warning",
    )
    with transaction(db) as s:
        s.execute(update(Message).where(Message.id <= 6).values(complained_at=Message.created_at))
    assert bounces.complaint_rate(session, "campaign", 9).level == "pause"
    assert bounces.complaint_rate(session, "journey", 9).sent == 0


def test_message_log_and_email_settings(db, client, client_as, mail_ready):
    with transaction(db) as s:
        c = factories.customer(s, email="log@example.jp")
        queue_mail(s, c.id, "promo")
    send_all(db)
    page = client.get(f"{API}/messages", params={"customer_id": c.id}).json()
    [item] = page["items"]
    assert (item["status"], item["reason"]) == ("skipped", "no_consent") and page["next_before"] is None
    detail = client.get(f"{API}/messages/{item['id']}").json()
    assert detail["error"].startswith("email marketing") and detail["events"] == []

    assert client_as("marketer").get(f"{API}/settings/email").status_code == 403
    saved = client.put(
        f"{API}/settings/email",
        json={"from_name": "絆", "from_address": "a@shop.example.com", "smtp_host": "mail.example.com",
              "smtp_password": "hunter2", "quiet_start": "21:00", "quiet_end": "8:00", "cap_count": 2},
    )  # fmt: skip
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["secrets_set"] == ["smtp_password"] and "hunter2" not in saved.text
    assert body["smtp"] == "starttls mail.example.com:587" and body["values"]["quiet_end"] == "08:00"
    kept = client.put(
        f"{API}/settings/email", json={"from_address": "a@shop.example.com", "smtp_host": "m.example.com"}
    )
    assert kept.json()["secrets_set"] == ["smtp_password"]
    removed = client.put(f"{API}/settings/email", json={"smtp_password": ""})
    assert removed.json()["secrets_set"] == []
    bad = client.put(f"{API}/settings/email", json={"quiet_start": "25:99", "quiet_end": "08:00"})
    assert bad.status_code == 422 and "quiet_start" in bad.text
    assert client.put(f"{API}/settings/email", json={"dkim_private_key": "not a key"}).status_code == 422
    with transaction(db) as s:
        audit_rows = list(s.scalars(select(AuditEntry).where(AuditEntry.entity_type == "channel_settings")))
    assert "hunter2" not in str([a.details for a in audit_rows])
    assert [a.details["secrets"] for a in audit_rows[1:3]] == [["smtp_password set"], []]


def test_recommendations_in_a_mail_come_from_what_customers_buy_together(db, client, mail_ready):
    def line(sku: str) -> dict:
        return {"sku": sku, "quantity": 1, "unit_price": 1000}

    with transaction(db) as s:
        for sku, name in (("TEA", "抹茶"), ("CUP", "湯呑み"), ("PAN", "急須")):
            factories.product(s, sku=sku, name=name)
        buyer = consented_customer(s, "buyer@example.jp")
        others = [factories.customer(s, email=f"o{n}@example.jp") for n in range(3)]
        for other in others:
            factories.order(
                s, customer_id=other.id, ordered_at=factories.at("2026-01-10"), lines=[line("TEA"), line("CUP")]
            )
        factories.order(s, customer_id=others[0].id, ordered_at=factories.at("2026-01-11"), lines=[line("PAN")])
        factories.order(s, customer_id=buyer.id, ordered_at=factories.at("2026-01-12"), lines=[line("TEA")])
    template = {
        "name": "recs",
        "subject": "おすすめ",
        "html": "{% for p in recommendations(1) %}<p>{{ p.name }}</p>{% endfor %}",
    }
    created = client.post(f"{API}/templates", json=template).json()
    shown = client.post(f"{API}/templates/{created['id']}/preview", params={"customer_id": buyer.id}).json()
    assert "<p>湯呑み</p>" in shown["html"]  # bought with matcha by everyone who bought matcha; matcha is owned
    with transaction(db) as s:
        queue_mail(s, buyer.id, "recs", template_id=created["id"])
    send_all(db)
    [got] = mail_ready.received
    assert "湯呑み" in got.part("html") and "急須" not in got.part("html")


def test_three_soft_bounces_in_a_row_suppress_unless_the_customer_showed_life(db, client, mail_ready):
    with transaction(db) as s:
        full = consented_customer(s, "full@example.jp")
        alive = consented_customer(s, "alive@example.jp")
        for n in range(3):
            for c in (full, alive):
                queue_mail(s, c.id, f"news:{n}:{c.id}")
    send_all(db)
    with transaction(db) as s:
        sent = sorted(s.scalars(select(Message)), key=lambda m: m.id)

    def soft(message: Message) -> dict:
        return {"type": "bounce", "bounce_type": "soft", "message_id": str(message.id), "reason": "452 4.2.2 full"}

    full_mails = [m for m in sent if m.customer_id == full.id]
    alive_mails = [m for m in sent if m.customer_id == alive.id]
    two = client.post(f"{API}/bounces", json={"reports": [soft(full_mails[0]), soft(full_mails[1])]}).json()
    assert two["suppressed"] == 0
    # The same mail reported again is still one bounce of one mail.
    assert client.post(f"{API}/bounces", json={"reports": [soft(full_mails[1])]}).json()["suppressed"] == 0
    assert client.post(f"{API}/bounces", json={"reports": [soft(full_mails[2])]}).json()["suppressed"] == 1
    # The other customer opened a mail between the bounces: the count starts again after it.
    client.post(f"{API}/bounces", json={"reports": [soft(alive_mails[0]), soft(alive_mails[1])]})
    with transaction(db) as s:
        tracking.record(s, s.get(Message, alive_mails[1].id), "open")
    assert client.post(f"{API}/bounces", json={"reports": [soft(alive_mails[2])]}).json()["suppressed"] == 0
    with transaction(db) as s:
        assert {x.address: x.reason for x in s.scalars(select(Suppression))} == {"full@example.jp": "soft_bounces"}
        queue_mail(s, full.id, "receipt-full", kind="service")
    send_all(db)
    with transaction(db) as s:
        receipt = s.scalars(select(Message).where(Message.key == "receipt-full")).one()
    assert (receipt.status, receipt.reason) == ("skipped", "suppressed")
