"""Campaigns: the audience fixed as messages once, the A/B sample and its winner, complaints pausing, cancel,
and the measured funnel with conversions; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from kizuna.analytics import significance
from kizuna.auth.permissions import Actor
from kizuna.campaigns import service
from kizuna.campaigns.models import Campaign
from kizuna.campaigns.schemas import ABTest, CampaignCreate, Variant
from kizuna.db import new_session, take_write_lock, transaction, utcnow
from kizuna.errors import Conflict, PermissionDenied, ValidationError
from kizuna.messaging.models import Message, Template
from kizuna.segments import service as segments
from kizuna.segments.schemas import SegmentCreate
from tests import factories

MARKETER = Actor(label="marketer@example.com", role="marketer", origin="api")
WORKER = Actor.system("campaigns", origin="worker")


def world(db: Engine, n: int = 40) -> dict[str, int]:
    with transaction(db) as session:
        ids = []
        for i in range(n):
            c = factories.customer(session, email=f"c{i}@example.com", prefecture="東京都" if i % 4 else "大阪府")
            ids.append(c.id)
        template = Template(name="sale", channel="email", subject="Sale", html="<p>Hi</p>", text="Hi")
        line = Template(name="line-hello", channel="line", body={"messages": [{"type": "text", "text": "hi"}]})
        session.add_all([template, line])
        session.flush()
        segment = segments.create_segment(
            session,
            actor=MARKETER,
            data=SegmentCreate(name="Tokyo", rule={"attribute": "prefecture", "op": "eq", "value": "東京都"}),
        )
        session.flush()
        return {"segment": segment.id, "template": template.id, "line_template": line.id, "customers": len(ids)}


def launch(db: Engine, campaign_id: int) -> int:
    with transaction(db) as session:
        take_write_lock(session.connection())
        return service.launch(session, campaign_id, actor=WORKER)


def messages(db: Engine, campaign_id: int) -> list[Message]:
    with new_session(db) as session:
        return list(
            session.scalars(select(Message).where(Message.source_id == campaign_id, Message.source == "campaign"))
        )


def test_launch_fixes_the_audience_once_even_when_two_workers_race(db: Engine) -> None:
    w = world(db)
    with transaction(db) as session:
        c = service.create_campaign(
            session,
            actor=MARKETER,
            data=CampaignCreate(name="Winter", segment_id=w["segment"], template_id=w["template"]),
        )
        service.schedule(session, c.id, actor=MARKETER)
        campaign_id = c.id
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(launch(db, campaign_id))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(counts) == [0, 30]
    rows = messages(db, campaign_id)
    assert len(rows) == 30 and len({r.customer_id for r in rows}) == 30
    assert {r.status for r in rows} == {"queued"} and len({r.delivery_key for r in rows}) == 30
    with new_session(db) as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign.status == "sending" and campaign.audience == 30


def test_ab_test_sends_the_sample_then_releases_the_winner_to_the_rest(db: Engine) -> None:
    w = world(db, n=200)  # 150 in Tokyo
    ab = ABTest(
        variants=[Variant(name="A", subject="冬のセール"), Variant(name="B", subject="最大50%オフ")],
        sample_percent=40,
        metric="opened",
        test_hours=2,
    )
    with transaction(db) as session:
        c = service.create_campaign(
            session,
            actor=MARKETER,
            data=CampaignCreate(name="AB", segment_id=w["segment"], template_id=w["template"], ab_test=ab),
        )
        service.schedule(session, c.id, actor=MARKETER)
        campaign_id = c.id
    assert launch(db, campaign_id) == 150
    rows = messages(db, campaign_id)
    sample = [r for r in rows if r.status == "queued"]
    assert len(sample) == 60 and {r.variant for r in sample} == {"A", "B"}
    assert sum(r.variant == "A" for r in sample) == 30
    assert all(r.status == "held" and r.variant is None for r in rows if r not in sample)
    assert {r.content["subject"] for r in sample if r.variant == "B"} == {"最大50%オフ"}
    # The sample goes out; B is opened far more often.
    now = utcnow()
    with transaction(db) as session:
        seen = {"A": 0, "B": 0}
        for r in sample:
            seen[r.variant] += 1
            # B: 15 of 30 opened; A: 3 of 30.
            opened = now if seen[r.variant] % (2 if r.variant == "B" else 10) == 0 else None
            session.execute(
                update(Message).where(Message.id == r.id).values(status="sent", sent_at=now, opened_at=opened)
            )
        session.execute(update(Campaign).where(Campaign.id == campaign_id).values(test_ends_at=now))
    with transaction(db) as session:
        take_write_lock(session.connection())
        assert service.decide(session, campaign_id, actor=WORKER) == "B"
    rest = [r for r in messages(db, campaign_id) if r.status != "sent"]
    assert len(rest) == 90 and {r.status for r in rest} == {"queued"} and {r.variant for r in rest} == {"B"}
    assert {r.content["subject"] for r in rest} == {"最大50%オフ"}
    with new_session(db) as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign.winner == "B" and campaign.status == "sending"
        assert campaign.decision["sent"] == [30, 30] and campaign.decision["p_value"] < 0.05
        stats = service.stats(session, campaign_id, actor=MARKETER)
    assert stats.total.messages == 150 and stats.total.sent == 60 and stats.total.queued == 90


def test_complaints_at_the_threshold_pause_the_rest_and_resume_releases_it(db: Engine) -> None:
    w = world(db)
    with transaction(db) as session:
        c = service.create_campaign(
            session,
            actor=MARKETER,
            data=CampaignCreate(name="Complain", segment_id=w["segment"], template_id=w["template"]),
        )
        service.schedule(session, c.id, actor=MARKETER)
        campaign_id = c.id
    launch(db, campaign_id)
    rows = sorted(messages(db, campaign_id), key=lambda r: r.id)
    now = utcnow()
    with transaction(db) as session:
        for r in rows[:10]:
            session.execute(update(Message).where(Message.id == r.id).values(status="sent", sent_at=now))
        session.execute(update(Message).where(Message.id == rows[0].id).values(complained_at=now))
    with transaction(db) as session:
        assert service.watch(session, campaign_id, actor=WORKER) == "paused"
    with new_session(db) as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign.status == "paused" and "complaint rate 10.00%" in campaign.paused_reason
        assert service.stats(session, campaign_id, actor=MARKETER).complaint_warning
    assert sum(r.status == "held" for r in messages(db, campaign_id)) == 20
    with transaction(db) as session:
        service.resume(session, campaign_id, actor=MARKETER)
    assert sum(r.status == "queued" for r in messages(db, campaign_id)) == 20


def test_cancel_records_what_was_not_sent_as_skipped_and_sent_campaigns_finish(db: Engine) -> None:
    w = world(db)
    with transaction(db) as session:
        a = service.create_campaign(
            session, actor=MARKETER, data=CampaignCreate(name="A", segment_id=w["segment"], template_id=w["template"])
        )
        b = service.create_campaign(
            session, actor=MARKETER, data=CampaignCreate(name="B", segment_id=w["segment"], template_id=w["template"])
        )
        service.schedule(session, a.id, actor=MARKETER)
        service.schedule(session, b.id, actor=MARKETER)
        ids = (a.id, b.id)
    launch(db, ids[0])
    launch(db, ids[1])
    with transaction(db) as session:
        service.cancel(session, ids[0], actor=MARKETER)
        session.execute(update(Message).where(Message.source_id == ids[1]).values(status="sent", sent_at=utcnow()))
    assert {(r.status, r.reason) for r in messages(db, ids[0])} == {("skipped", "cancelled")}
    with transaction(db) as session:
        assert service.watch(session, ids[1], actor=WORKER) == "sent"
        with pytest.raises(Conflict):
            service.cancel(session, ids[0], actor=MARKETER)


def test_conversions_count_orders_within_the_window_after_the_send(db: Engine) -> None:
    w = world(db, n=8)  # 6 in Tokyo
    with transaction(db) as session:
        c = service.create_campaign(
            session,
            actor=MARKETER,
            data=CampaignCreate(name="Conv", segment_id=w["segment"], template_id=w["template"]),
        )
        service.schedule(session, c.id, actor=MARKETER)
        campaign_id = c.id
    launch(db, campaign_id)
    rows = sorted(messages(db, campaign_id), key=lambda r: r.id)
    sent = utcnow() - dt.timedelta(days=10)
    with transaction(db) as session:
        session.execute(update(Message).where(Message.source_id == campaign_id).values(status="sent", sent_at=sent))
        factories.product(session, sku="X-1", name="Tea")
        line = [{"sku": "X-1", "quantity": 1, "unit_price": 1000}]
        factories.order(session, customer_id=rows[0].customer_id, ordered_at=sent + dt.timedelta(days=2), lines=line)
        factories.order(session, customer_id=rows[1].customer_id, ordered_at=sent + dt.timedelta(days=9), lines=line)
        factories.order(session, customer_id=rows[2].customer_id, ordered_at=sent - dt.timedelta(days=1), lines=line)
        factories.order(
            session,
            customer_id=rows[3].customer_id,
            ordered_at=sent + dt.timedelta(days=1),
            lines=line,
            status="cancelled",
        )
    with new_session(db) as session:
        stats = service.stats(session, campaign_id, actor=MARKETER)
    assert stats.total.sent == 6 and stats.total.converted == 1
    assert stats.total.conversion_rate == pytest.approx(1 / 6)


def test_bad_input_and_permissions(db: Engine) -> None:
    w = world(db, n=2)
    viewer = Actor(label="viewer", role="viewer")
    with transaction(db) as session:
        with pytest.raises(PermissionDenied):
            service.create_campaign(
                session, actor=viewer, data=CampaignCreate(name="X", segment_id=w["segment"], template_id=w["template"])
            )
        with pytest.raises(ValidationError, match="template 'line-hello' is for line"):
            service.create_campaign(
                session,
                actor=MARKETER,
                data=CampaignCreate(name="X", segment_id=w["segment"], template_id=w["line_template"]),
            )
        with pytest.raises(ValidationError, match="no segment with id 999"):
            service.create_campaign(
                session, actor=MARKETER, data=CampaignCreate(name="X", segment_id=999, template_id=w["template"])
            )
        c = service.create_campaign(
            session, actor=MARKETER, data=CampaignCreate(name="X", segment_id=w["segment"], template_id=w["template"])
        )
        with pytest.raises(ValidationError, match="time zone"):
            service.schedule(session, c.id, actor=MARKETER, at=dt.datetime(2030, 1, 1, 9))
        with pytest.raises(Conflict, match="exists already"):
            service.create_campaign(
                session,
                actor=MARKETER,
                data=CampaignCreate(name="X", segment_id=w["segment"], template_id=w["template"]),
            )
    with pytest.raises(ValueError, match="variant names must differ"):
        ABTest(variants=[Variant(name="A"), Variant(name="A")])


def test_two_group_z_test_agrees_with_chi_square_and_small_groups_call_nothing() -> None:
    from scipy.stats import chi2_contingency

    z = significance.compare([100, 130], [1000, 1000])
    chi = chi2_contingency([[100, 900], [130, 870]], correction=False).pvalue
    assert z.p_value == pytest.approx(chi, rel=1e-9) and z.significant
    assert z.difference == pytest.approx(0.03) and z.low < z.difference < z.high
    assert not significance.compare([1, 5], [10, 10]).significant
    assert significance.compare([10, 10, 10], [100, 100, 100]).p_value == pytest.approx(1.0)
    with pytest.raises(ValueError):
        significance.compare([5], [10])
