"""The SLA clocks stop while an inquiry waits for the customer (pending), on SQLite and PostgreSQL, with fixed
clocks: never overdue while paused, due times moved forward by the business time paused (09:00-18:00 Tokyo,
weekdays: the defaults), the agents' own time in the report, and "SLA paused" in the API and the pages."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from kizuna.auth.models import AuditEntry
from kizuna.auth.permissions import Actor
from kizuna.db import utcnow
from kizuna.inquiries import queues, service, sla
from kizuna.inquiries.models import Inquiry
from kizuna.inquiries.schemas import InquiryCreate, InquiryUpdate, ReplyCreate

JST = dt.timezone(dt.timedelta(hours=9))
AGENT = Actor.system("test-agent")


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A Tokyo time from Monday 2026-11-30 (day 30) to December (days 1-20), as UTC."""
    month = 11 if day > 20 else 12
    return dt.datetime(2026, month, day, hour, minute, tzinfo=JST).astimezone(dt.UTC)


def opened(session, *, email: str = "wait@example.jp", subject: str = "配送について") -> Inquiry:  # noqa: ANN001
    data = InquiryCreate(subject=subject, body="荷物が届きません", email=email)
    return service.open_inquiry(session, actor=AGENT, data=data, now=at(30, 10)).inquiry


def test_working_time_between_is_what_add_working_time_adds():
    hours = sla.business_hours("09:00-18:00")
    friday_17 = dt.datetime(2026, 11, 27, 17, 0, tzinfo=JST)
    monday_10 = sla.add_working_time(friday_17, dt.timedelta(hours=2), hours, "Asia/Tokyo")
    assert monday_10 == dt.datetime(2026, 11, 30, 10, 0, tzinfo=JST)
    assert sla.working_time_between(friday_17, monday_10, hours, "Asia/Tokyo") == dt.timedelta(hours=2)
    # A weekend alone is no working time; around the clock it is all of it.
    saturday, sunday = dt.datetime(2026, 11, 28, 9, tzinfo=JST), dt.datetime(2026, 11, 29, 20, tzinfo=JST)
    assert sla.working_time_between(saturday, sunday, hours, "Asia/Tokyo") == dt.timedelta(0)
    assert sla.working_time_between(saturday, sunday, None, "Asia/Tokyo") == dt.timedelta(hours=35)
    assert sla.working_time_between(monday_10, friday_17, hours, "Asia/Tokyo") == dt.timedelta(0)


def test_a_pending_ticket_is_never_overdue_and_its_due_times_move_by_the_business_time_paused(session):
    inquiry = opened(session)
    # Normal priority: first response 480 working minutes (Monday 18:00), resolution 2400 (Friday 14:00).
    assert (inquiry.first_response_due_at, inquiry.resolution_due_at) == (at(30, 18), at(4, 14))
    service.reply(session, actor=AGENT, inquiry_id=inquiry.id, data=ReplyCreate(body="ご確認ください"), now=at(30, 11))
    session.commit()
    assert inquiry.status == "pending" and inquiry.sla_paused_at == at(30, 11)
    # A week later, far past the resolution due time: paused, so neither overdue nor first in the queue.
    week_later = at(7, 12)
    assert not service.is_overdue(inquiry, week_later)
    running = opened(session, email="other@example.jp", subject="running")
    session.commit()
    order = [i.subject for i in queues.queue(session, actor=AGENT, now=week_later)]
    assert order == ["running", "配送について"]  # the running one is overdue; the paused one waits at the end

    # The customer answers on Wednesday 11:00: paused Mon 11-18 (7h) + Tue (9h) + Wed 9-11 (2h) = 18 working hours.
    service.append_customer_message(
        session, actor=AGENT, inquiry=inquiry, body="まだです", author="wait@example.jp", now=at(2, 11)
    )
    session.commit()
    session.refresh(inquiry)
    assert inquiry.status == "open" and inquiry.sla_paused_at is None
    assert inquiry.sla_paused_seconds == 18 * 3600 and inquiry.pending_seconds == 48 * 3600
    # Friday 14:00 + 18 working hours: Fri 14-18 (4h), Mon (9h), Tue 9-14 (5h) -> Tuesday 14:00.
    assert inquiry.resolution_due_at == at(8, 14)
    assert inquiry.first_response_due_at == at(30, 18)  # answered already: its due time is history
    assert not service.is_overdue(inquiry, at(8, 13, 59)) and service.is_overdue(inquiry, at(8, 14, 1))
    assert running.sla_paused_at is None and service.is_overdue(running, week_later)
    # The pause and the moved due times are in the audit trail of the status change.
    changes = session.scalars(
        select(AuditEntry.details).where(AuditEntry.entity_type == "inquiry", AuditEntry.entity_id == str(inquiry.id))
    ).all()
    assert any("sla_paused_at" in str(c) for c in changes)


def test_an_agent_reopening_resumes_the_clock_and_resolving_ends_the_pause_for_the_report(session):
    inquiry = opened(session)
    service.update_inquiry(session, actor=AGENT, inquiry_id=inquiry.id, data=InquiryUpdate(status="pending"),
                           now=at(30, 12))  # fmt: skip
    assert inquiry.sla_paused_at == at(30, 12)
    # Reopened by the agent at Monday 17:00: 5 working hours paused; the unanswered first response moves too.
    service.update_inquiry(session, actor=AGENT, inquiry_id=inquiry.id, data=InquiryUpdate(status="open"),
                           now=at(30, 17))  # fmt: skip
    assert inquiry.sla_paused_seconds == 5 * 3600
    assert inquiry.first_response_due_at == at(1, 14)  # Monday 18:00 + 5h: Tuesday 14:00
    # Pending again over the night, resolved from pending on Tuesday 10:00 (wall clock 17h, 2 working hours).
    service.update_inquiry(session, actor=AGENT, inquiry_id=inquiry.id, data=InquiryUpdate(status="pending"),
                           now=at(30, 17))  # fmt: skip
    service.update_inquiry(session, actor=AGENT, inquiry_id=inquiry.id, data=InquiryUpdate(status="resolved"),
                           now=at(1, 10))  # fmt: skip
    session.commit()
    assert inquiry.sla_paused_at is None and inquiry.resolved_at == at(1, 10)
    assert inquiry.sla_paused_seconds == 7 * 3600 and inquiry.pending_seconds == (5 + 17) * 3600
    report = queues.report(session, actor=AGENT)
    [row] = report.by_category
    # Opened Monday 10:00, resolved Tuesday 10:00: 24h elapsed, of which 22h waiting for the customer.
    assert row.median_resolution_minutes == 24 * 60 and row.median_resolution_agent_minutes == 2 * 60


def test_a_priority_change_while_paused_keeps_the_pause_already_counted(session):
    inquiry = opened(session)
    service.update_inquiry(session, actor=AGENT, inquiry_id=inquiry.id, data=InquiryUpdate(status="pending"),
                           now=at(30, 11))  # fmt: skip
    service.update_inquiry(session, actor=AGENT, inquiry_id=inquiry.id, data=InquiryUpdate(status="open"),
                           now=at(30, 13))  # fmt: skip
    # Urgent and back to open in one change, after a second pending spell of 1 working hour: 60 + 2h + 1h.
    service.update_inquiry(session, actor=AGENT, inquiry_id=inquiry.id, data=InquiryUpdate(status="pending"),
                           now=at(30, 14))  # fmt: skip
    service.update_inquiry(session, actor=AGENT, inquiry_id=inquiry.id,
                           data=InquiryUpdate(status="open", priority="urgent"), now=at(30, 15))  # fmt: skip
    assert inquiry.first_response_due_at == at(30, 14)  # opened 10:00 + 60 min + 3 working hours paused


def test_the_api_and_the_pages_show_the_pause(client, ui_client, session):
    inquiry = opened(session)
    service.update_inquiry(session, actor=AGENT, inquiry_id=inquiry.id, data=InquiryUpdate(status="pending"),
                           now=at(30, 12))  # fmt: skip
    session.commit()
    body = client.get(f"/api/v1/inquiries/{inquiry.id}").json()
    assert body["sla_paused"] is True and body["overdue"] is False
    assert body["sla_paused_at"].startswith("2026-11-30T03:00:00")
    listed = client.get("/api/v1/inquiries?tab=all").json()
    assert [(i["id"], i["sla_paused"]) for i in listed] == [(inquiry.id, True)]
    for lang, words in (("ja", "SLA停止中"), ("en", "SLA paused")):
        c = ui_client("manager")
        c.cookies.set("kizuna_lang", lang)
        page = c.get(f"/inquiries/{inquiry.id}").text
        assert 'data-testid="sla-paused"' in page and words in page and 'data-testid="sla-warning"' not in page
        queue = c.get("/inquiries").text
        row = re.search(rf'data-testid="queue-row-{inquiry.id}".*?</tr>', queue, re.S).group(0)
        assert words in row and "overdue" not in row
        report = c.get("/inquiries/report").text
        assert ("対応時間" if lang == "ja" else "agent time") in report


@pytest.mark.parametrize("status", ["open", "pending"])
def test_the_customer_answering_by_mail_resumes_the_clock(client, session, status):
    # The mail arrives now (the endpoint's clock): the ticket was opened and left waiting days before.
    now = utcnow()
    data = InquiryCreate(subject="配送について", body="荷物が届きません", email="wait@example.jp")
    inquiry = service.open_inquiry(session, actor=AGENT, data=data, now=now - dt.timedelta(days=3)).inquiry
    service.update_inquiry(session, actor=AGENT, inquiry_id=inquiry.id, data=InquiryUpdate(status=status),
                           now=now - dt.timedelta(days=2))  # fmt: skip
    session.commit()
    raw = (
        f"From: wait@example.jp\r\nSubject: Re: [#KZ-{inquiry.id}] 配送について\r\n"
        f"Message-ID: <r-{status}@example.jp>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + "届きました"
    ).encode()
    r = client.post("/api/v1/inquiries/email", content=raw, headers={"Content-Type": "message/rfc822"})
    assert r.status_code == 200 and r.json()["inquiry_id"] == inquiry.id, r.text
    session.expire_all()
    fresh = session.get(Inquiry, inquiry.id)
    assert fresh.status == "open" and fresh.sla_paused_at is None
    assert (fresh.pending_seconds >= 2 * 86400) is (status == "pending")
