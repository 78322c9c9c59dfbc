"""The send-time gate against a real SMTP server: who gets nothing, why, and that the reason is recorded."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from kizuna.db import transaction, utcnow
from kizuna.messaging import service, settings
from kizuna.messaging.models import Message, MessageEvent
from tests import factories
from tests.messaging.conftest import ADMIN, IDENTITY, consented_customer, queue_mail, send_all


def by_key(engine) -> dict[str, Message]:  # noqa: ANN001
    with transaction(engine) as s:
        return {m.key: m for m in s.scalars(select(Message))}


def save_rules(engine, **rules) -> None:  # noqa: ANN001, ANN003
    with transaction(engine) as s:
        settings.save(s, actor=ADMIN, channel="email", values={**IDENTITY, **rules})


def test_marketing_without_consent_is_skipped_with_the_reason_and_service_mail_still_goes(db, mail_ready):
    with transaction(db) as s:
        never = factories.customer(s, email="never@example.jp")
        withdrawn = consented_customer(s, "withdrawn@example.jp")
        factories.consent(s, customer_id=withdrawn.id, channel="email", status="withdrawn")
        # 特定電子メール法's exemption for an existing business relationship, recorded by the user as a decision.
        related = factories.customer(s, email="related@example.jp")
        factories.consent(s, customer_id=related.id, channel="email", method="existing_relationship")
        for c in (never, withdrawn, related):
            queue_mail(s, c.id, f"promo-{c.email}")
        queue_mail(s, never.id, "order-confirmation", kind="service")
    send_all(db)
    got = by_key(db)
    assert (got["promo-never@example.jp"].status, got["promo-never@example.jp"].reason) == ("skipped", "no_consent")
    assert "no consent decision" in got["promo-never@example.jp"].error
    assert got["promo-withdrawn@example.jp"].reason == "no_consent"
    assert "withdrawn" in got["promo-withdrawn@example.jp"].error
    assert got["promo-related@example.jp"].status == "sent"
    assert got["order-confirmation"].status == "sent"
    assert sorted(r.to[0] for r in mail_ready.received) == ["never@example.jp", "related@example.jp"]
    # The service mail carries neither the marketing footer nor the one-click unsubscribe.
    [service_mail] = mail_ready.to("never@example.jp")
    assert service_mail.mail["List-Unsubscribe"] is None


def test_suppressions_stop_what_they_should(db, mail_ready):
    with transaction(db) as s:
        bounced = consented_customer(s, "Bounced@Example.jp")
        left = consented_customer(s, "left@example.jp")
        service.suppress(s, actor=ADMIN, channel="email", address="bounced@example.jp", reason="hard_bounce")
        service.suppress(s, actor=ADMIN, channel="email", address="left@example.jp", reason="unsubscribe")
        for c in (bounced, left):
            queue_mail(s, c.id, f"promo-{c.id}")
            queue_mail(s, c.id, f"receipt-{c.id}", kind="service")
    send_all(db)
    got = by_key(db)
    # A hard bounce stops both kinds (the address does not exist); an unsubscribe stops marketing only.
    assert got[f"promo-{bounced.id}"].reason == "suppressed" and got[f"receipt-{bounced.id}"].reason == "suppressed"
    assert got[f"promo-{left.id}"].reason == "suppressed"
    assert got[f"receipt-{left.id}"].status == "sent"
    assert [r.to for r in mail_ready.received] == [["left@example.jp"]]


def test_frequency_cap_counts_journeys_and_campaigns_together(db, mail_ready):
    save_rules(db, cap_count=2, cap_days=7)
    with transaction(db) as s:
        c = consented_customer(s, "busy@example.jp")
        other = consented_customer(s, "calm@example.jp")
        old = queue_mail(s, c.id, "journey:1:enrollment:1:step:a", source="journey", source_id=1)
        ancient = queue_mail(s, c.id, "journey:1:enrollment:1:step:0", source="journey", source_id=1)
        s.flush()
        s.execute(
            update(Message).where(Message.id == old.id).values(status="sent", sent_at=utcnow() - dt.timedelta(days=2))
        )
        s.execute(
            update(Message)
            .where(Message.id == ancient.id)
            .values(status="sent", sent_at=utcnow() - dt.timedelta(days=9))
        )
        queue_mail(s, c.id, "campaign:7:customer:1", source="campaign", source_id=7)
        queue_mail(s, c.id, "campaign:8:customer:1", source="campaign", source_id=8)
        queue_mail(s, c.id, "receipt", kind="service")
        queue_mail(s, other.id, "campaign:7:customer:2", source="campaign", source_id=7)
    send_all(db)
    got = by_key(db)
    assert got["campaign:7:customer:1"].status == "sent"
    assert (got["campaign:8:customer:1"].status, got["campaign:8:customer:1"].reason) == ("skipped", "capped")
    assert "cap 2" in got["campaign:8:customer:1"].error
    assert got["receipt"].status == "sent"  # caps are for marketing
    assert got["campaign:7:customer:2"].status == "sent"
    assert len(mail_ready.to("busy@example.jp")) == 2


def test_quiet_hours_delay_a_message_to_their_end_in_the_customers_time_zone(db, mail_ready):
    # Quiet hours around "now" in New York, whatever time the test runs.
    ny = ZoneInfo("America/New_York")
    local = utcnow().astimezone(ny)
    start = (local - dt.timedelta(hours=1)).strftime("%H:%M")
    end = (local + dt.timedelta(hours=2)).replace(second=0, microsecond=0)
    save_rules(db, quiet_start=start, quiet_end=end.strftime("%H:%M"))
    with transaction(db) as s:
        night = consented_customer(s, "ny@example.com", timezone="America/New_York")
        queue_mail(s, night.id, "promo-ny")
        queue_mail(s, night.id, "receipt-ny", kind="service")
    send_all(db)
    got = by_key(db)
    delayed = got["promo-ny"]
    assert delayed.status == "queued" and delayed.attempts == 0  # delayed, not dropped, no attempt used
    assert delayed.due_at.astimezone(ny).strftime("%H:%M") == end.strftime("%H:%M")
    assert got["receipt-ny"].status == "sent"  # quiet hours hold marketing only
    with transaction(db) as s:
        assert s.scalar(select(MessageEvent.kind).where(MessageEvent.message_id == delayed.id)) == "delayed"
        # The quiet hours end: the message goes out then, checked again by the gate.
        s.execute(update(Message).where(Message.id == delayed.id).values(due_at=utcnow()))
    save_rules(db)
    send_all(db)
    assert by_key(db)["promo-ny"].status == "sent"
    assert len(mail_ready.to("ny@example.com")) == 2


def test_a_merged_customers_message_goes_to_the_survivor_once(db, mail_ready):
    from kizuna.customers import merge

    with transaction(db) as s:
        survivor = consented_customer(s, "keep@example.jp")
        merged = consented_customer(s, "old@example.jp")
        queue_mail(s, survivor.id, "campaign:3:customer:keep", source="campaign", source_id=3, source_step="main")
        queue_mail(s, merged.id, "campaign:3:customer:old", source="campaign", source_id=3, source_step="main")
        queue_mail(s, merged.id, "receipt-old", kind="service")
    with transaction(db) as s:
        merge.merge_customers(s, actor=ADMIN, survivor_id=survivor.id, merged_id=merged.id, reason="same person")
    send_all(db)
    got = by_key(db)
    assert got["campaign:3:customer:keep"].status == "sent"
    assert (got["campaign:3:customer:old"].status, got["campaign:3:customer:old"].reason) == ("skipped", "duplicate")
    assert got["receipt-old"].status == "sent" and got["receipt-old"].customer_id == survivor.id
    assert {r.to[0] for r in mail_ready.received} == {"keep@example.jp"}


def test_no_address_is_recorded(db, mail_ready):
    with transaction(db) as s:
        c = factories.customer(s, phone="09012345678")
        factories.consent(s, customer_id=c.id, channel="email")
        queue_mail(s, c.id, "promo")
    send_all(db)
    m = by_key(db)["promo"]
    assert (m.status, m.reason) == ("skipped", "no_address")
