"""Segments: validation with paths, cycles, membership history over refreshes, outbox messages, incremental
refresh, static lists, the schedule; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from kizuna.auth.permissions import Actor
from kizuna.customers.models import Customer
from kizuna.db import new_session, transaction
from kizuna.errors import PermissionDenied
from kizuna.outbox.models import OutboxMessage
from kizuna.segments import service
from kizuna.segments.models import SegmentMembership
from kizuna.segments.rules import SegmentRuleError, parse_rule
from kizuna.segments.schemas import SegmentCreate, SegmentUpdate
from tests import factories
from tests.segments.conftest import MARKETER, days_ago

TOKYO = {"attribute": "prefecture", "op": "eq", "value": "東京都"}


@pytest.mark.parametrize(
    ("raw", "path", "problem"),
    [
        (
            '{"all": [{"tag": "VIP"}, {"tag": "x"}, {"event": "page_view", "within_days": -3}]}',
            "all[2].event.within_days",
            "must be a positive integer",
        ),
        ('{"all": [{"tag": "VIP", "colour": "red"}]}', "all[0].tag.colour", "unknown field"),
        ('{"event": "x", "min_count": "3"}', "event.min_count", "must be an integer"),
        (
            '{"any": [{"orders": {"metric": "spend", "op": "gt", "value": 1}}]}',
            "any[0].orders.metric",
            "must be one of",
        ),
        ('{"not": {"bogus": 1}}', "not", "not a condition"),
        ('{"all": [}', "", "is not valid JSON at line 1"),
        ('{"all": []}', "all", "at least 1 item"),
        (
            '{"attribute": "created_at", "op": "gte", "value": {"relative": "-3x"}}',
            "attribute.value.relative",
            "must look like -30d",
        ),
        ('{"attribute": "prefecture", "op": "in", "value": "東京都"}', "attribute", "needs a non-empty list"),
        ('{"bought": {"category": "tea", "brand": "x"}}', "bought", "exactly one of"),
        ('{"event": "x", "properties": {"a b": 1}}', "event.properties", "property name"),
    ],
)
def test_invalid_rules_are_refused_with_the_path_of_the_bad_part(raw, path, problem):
    with pytest.raises(SegmentRuleError) as caught:
        parse_rule(raw)
    error = caught.value
    assert error.path == path
    assert problem in error.problem
    assert error.key.startswith("error.segment_rule_") and error.params["path"] == (path or "rule")
    assert error.status_code == 422


def _create(session, name: str, rule, *, actor: Actor = MARKETER) -> int:
    return service.create_segment(session, actor=actor, data=SegmentCreate(name=name, rule=rule)).id


def test_segments_that_name_each_other_in_a_cycle_are_refused(db: Engine, world):
    with transaction(db) as s:
        a = _create(s, "A", TOKYO)
        b = _create(s, "B", {"all": [{"segment": a}, {"tag": "VIP"}]})
        c = _create(s, "C", {"any": [{"segment": b}]})
    with transaction(db) as s, pytest.raises(SegmentRuleError) as caught:
        service.update_segment(s, a, actor=MARKETER, data=SegmentUpdate(rule={"not": {"segment": c}}))
    assert caught.value.key == "error.segment_rule_cycle" and caught.value.path == "not.segment"
    with transaction(db) as s, pytest.raises(SegmentRuleError) as caught:
        service.update_segment(s, a, actor=MARKETER, data=SegmentUpdate(rule={"all": [TOKYO, {"segment": a}]}))
    assert caught.value.path == "all[1].segment" and "itself" in caught.value.problem
    with transaction(db) as s, pytest.raises(SegmentRuleError) as caught:
        _create(s, "D", {"segment": 999})
    assert caught.value.key == "error.segment_rule_unknown_segment"


def _members(db: Engine, segment_id: int) -> set[int]:
    with transaction(db) as s:
        return set(
            s.scalars(
                select(SegmentMembership.customer_id).where(
                    SegmentMembership.segment_id == segment_id, SegmentMembership.exited_at.is_(None)
                )
            )
        )


def _messages(db: Engine, topic: str) -> list[tuple[int, int]]:
    with transaction(db) as s:
        rows = s.execute(select(OutboxMessage.customer_id, OutboxMessage.payload).where(OutboxMessage.topic == topic))
        return sorted((customer_id, payload["segment_id"]) for customer_id, payload in rows)


def _set_prefecture(db: Engine, customer_id: int, prefecture: str) -> None:
    from kizuna.customers import service as customers
    from kizuna.customers.schemas import CustomerUpdate

    with transaction(db) as s:
        customers.update_customer(
            s,
            actor=factories.SYSTEM,
            customer_id=customer_id,
            data=CustomerUpdate(prefecture=prefecture),
            expected_version=None,
        )


def test_refreshes_record_entries_exits_and_re_entries_with_one_message_each(db: Engine, world):
    with transaction(db) as s:
        sid = _create(s, "東京", TOKYO)
        first = service.refresh(s, sid, actor=MARKETER)
    assert (first.mode, first.entered, first.exited, first.member_count) == ("initial", 2, 0, 2)
    assert _members(db, sid) == {world["aki"], world["chie"]}

    _set_prefecture(db, world["chie"], "北海道")
    _set_prefecture(db, world["dan"], "東京都")
    with transaction(db) as s:
        second = service.refresh(s, sid, actor=MARKETER)
    assert (second.mode, second.entered, second.exited, second.member_count) == ("incremental", 1, 1, 2)
    assert _members(db, sid) == {world["aki"], world["dan"]}

    _set_prefecture(db, world["chie"], "東京都")
    with transaction(db) as s:
        third = service.refresh(s, sid, actor=MARKETER, full=True)
        nothing = service.refresh(s, sid, actor=MARKETER)
    assert (third.mode, third.entered, third.exited) == ("full", 1, 0)
    assert (nothing.entered, nothing.exited, nothing.evaluated) == (0, 0, 0)

    with transaction(db) as s:
        stays = s.execute(
            select(SegmentMembership.entered_at, SegmentMembership.exited_at)
            .where(SegmentMembership.segment_id == sid, SegmentMembership.customer_id == world["chie"])
            .order_by(SegmentMembership.id)
        ).all()
        history = service.history(s, sid, actor=MARKETER)
    assert len(stays) == 2 and stays[0].exited_at is not None and stays[1].exited_at is None
    assert stays[1].entered_at > stays[0].exited_at
    assert len(history) == 4  # aki, chie (twice), dan
    assert _messages(db, "segment.entered") == sorted(
        [(world["aki"], sid), (world["chie"], sid), (world["dan"], sid), (world["chie"], sid)]
    )
    assert _messages(db, "segment.exited") == [(world["chie"], sid)]


def test_incremental_refresh_only_looks_at_customers_changed_since_the_last_one(db: Engine, world):
    rule = {"all": [TOKYO, {"event": "purchase_intent"}]}
    with transaction(db) as s:
        sid = _create(s, "intent", rule)
        service.refresh(s, sid, actor=MARKETER)
        # Rows written around the services (no outbox message) are invisible to an incremental refresh:
        # proof that it re-evaluates only the customers the outbox names.
        from kizuna.events.models import Event

        s.add(Event(customer_id=world["chie"], type="purchase_intent", channel="web", occurred_at=days_ago(0)))
    with transaction(db) as s:
        factories.event(s, customer_id=world["aki"], type="purchase_intent", channel="web", occurred_at=days_ago(0))
    with transaction(db) as s:
        result = service.refresh(s, sid, actor=MARKETER)
    assert (result.mode, result.evaluated, result.entered) == ("incremental", 1, 1)
    assert _members(db, sid) == {world["aki"]}
    with transaction(db) as s:
        healed = service.refresh(s, sid, actor=MARKETER, full=True)
    assert healed.entered == 1 and _members(db, sid) == {world["aki"], world["chie"]}


def test_a_merged_or_deleted_customer_leaves(db: Engine, world):
    with transaction(db) as s:
        sid = _create(s, "all tokyo", TOKYO)
        service.refresh(s, sid, actor=MARKETER)
    from kizuna.customers import service as customers

    with transaction(db) as s:
        customers.delete_customer(s, actor=factories.SYSTEM, customer_id=world["chie"], expected_version=None)
    with transaction(db) as s:
        service.refresh(s, sid, actor=MARKETER)
    assert _members(db, sid) == {world["aki"]}


def test_a_segment_of_segments_sees_the_other_refreshed_in_the_same_round(db: Engine, world):
    with transaction(db) as s:
        vip = _create(s, "VIP", {"tag": "VIP"})
        outer = _create(s, "VIP in Tokyo", {"all": [{"segment": vip}, TOKYO]})
    results, errors = service.refresh_due(lambda: new_session(db), actor=MARKETER)
    assert errors == [] and [r.segment_id for r in results] == [vip, outer]
    assert _members(db, outer) == {world["aki"]}


def test_static_lists_from_csv_segment_and_filter_snapshots(db: Engine, world):
    csv = "email\nAKI@example.com\nnobody@example.com\n\n"
    with transaction(db) as s:
        seg = service.create_segment(s, actor=MARKETER, data=SegmentCreate(name="csv", kind="static"))
        found = service.resolve_csv(s, csv)
        assert found.unmatched == ["nobody@example.com"]
        service.build_static(s, seg.id, actor=MARKETER, customer_ids=found.ids, source={"from": "csv"})
    assert _members(db, seg.id) == {world["aki"]}
    ids_csv = f"{world['ben']}\n{world['eve']}\n#{world['dan']}\n123456\n"
    with transaction(db) as s:
        found = service.resolve_csv(s, ids_csv)
        assert found.unmatched == ["123456"]
        result = service.build_static(s, seg.id, actor=MARKETER, customer_ids=found.ids, source={"from": "csv"})
    # eve is merged: not active, not a member; aki was not in the new file: she leaves.
    assert (result.entered, result.exited) == (2, 1)
    assert _members(db, seg.id) == {world["ben"], world["dan"]}
    with transaction(db) as s:
        dyn = _create(s, "tokyo", TOKYO)
        service.refresh(s, dyn, actor=MARKETER)
        snap = service.create_segment(s, actor=MARKETER, data=SegmentCreate(name="snap", kind="static"))
        service.build_static(
            s, snap.id, actor=MARKETER, customer_ids=service.snapshot_of_segment(s, dyn, actor=MARKETER), source={}
        )
        flt = service.create_segment(s, actor=MARKETER, data=SegmentCreate(name="flt", kind="static"))
        service.build_static(
            s, flt.id, actor=MARKETER, customer_ids=service.snapshot_of_filter({"decile__lte": "5"}), source={}
        )
    assert _members(db, snap.id) == {world["aki"], world["chie"]}
    assert _members(db, flt.id) == {world["aki"]}
    with transaction(db) as s, pytest.raises(Exception, match="static list"):
        service.refresh(s, seg.id, actor=MARKETER)


def test_the_customer_filter_set_exposes_the_metrics(db: Engine, world):
    from kizuna.customers.filters import CUSTOMER_FILTERS

    def ids(params):  # noqa: ANN001, ANN202
        with transaction(db) as s:
            return set(s.scalars(CUSTOMER_FILTERS.apply(select(Customer.id), params)))

    assert ids({"rfm_segment": "champions"}) == {world["aki"]}
    assert ids({"decile__gte": "5"}) == {world["ben"]}
    assert ids({"clv__gt": "500"}) == {world["aki"]}
    assert ids({"churn_risk__lt": "0.5"}) == {world["aki"]}
    assert ids({"rfm_segment__isnull": "true"}) == {world["chie"], world["dan"]}
    assert ids({"order_count__gte": "1", "rfm_segment__ne": "lost"}) == {world["aki"]}


def test_viewers_read_segments_but_only_marketing_roles_write_them(db: Engine, world):
    viewer = Actor(label="v", role="viewer")
    with transaction(db) as s:
        sid = _create(s, "tokyo", TOKYO)
        assert [x.id for x in service.list_segments(s, actor=viewer)] == [sid]
        assert service.preview(s, TOKYO, actor=viewer).count == 2
        with pytest.raises(PermissionDenied):
            service.refresh(s, sid, actor=viewer)
        with pytest.raises(PermissionDenied):
            _create(s, "x", TOKYO, actor=Actor(label="s", role="sales"))


def test_the_worker_refreshes_on_a_schedule_and_queues_the_next_tick(db: Engine, world):
    from kizuna.outbox import worker
    from kizuna.outbox.models import OutboxDelivery
    from kizuna.segments import schedule

    with transaction(db) as s:
        sid = _create(s, "tokyo", TOKYO)
        schedule.ensure_scheduled(s)
        schedule.ensure_scheduled(s)  # one tick waits, not two
    with transaction(db) as s:
        s.execute(OutboxDelivery.__table__.update().values(available_at=func.now()))
        pending = s.scalar(select(func.count()).where(OutboxDelivery.subscriber == schedule.SUBSCRIBER))
    assert pending == 1
    tally = worker.run_once(db)
    assert tally.done >= 1 and tally.failed == 0
    assert _members(db, sid) == {world["aki"], world["chie"]}
    with transaction(db) as s:
        waiting = s.scalar(
            select(func.count()).where(
                OutboxDelivery.subscriber == schedule.SUBSCRIBER, OutboxDelivery.status == "pending"
            )
        )
    assert waiting == 1
