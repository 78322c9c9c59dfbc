"""The customers whose data changed since a segment last looked: the candidates of an incremental refresh.

Every change Kizuna records about a customer writes an outbox message naming them (an event, an order placed,
changed or deleted, an update, a tag, a consent, a merge, a deletion, another segment's entry or exit, a
metrics row removed), so the outbox is the change log and a segment keeps the id of the last message it has
seen (``Segment.watermark``). The sources, each read through an index so that the cost follows the number of
changes, not the number of customers:

- messages after the watermark that name a customer (the outbox's primary key, a range);
- the merged record of each ``customer.merged`` (the message names the survivor; the merged record leaves);
- entries and exits of the segments the rule names (``ix_outbox_topic``: topic, then id);
- for a rule over the metrics, the rows each metrics run announced since (``metrics.refreshed``) rewrote:
  ``customer_metrics.computed_at`` from the run's start (``ix_customer_metrics_computed_at``). A CLV run
  rewrites every row, so a rule over a CLV column (``clv``, ``churn_risk``, ``p_alive``) is then refreshed in
  full (``Changes.everyone``).

The candidates are written into a temporary table (one row per customer) that the refresh's match query is
driven from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, union
from sqlalchemy.engine import Connection

from kizuna.analytics.models import CustomerMetrics, MetricRun
from kizuna.outbox.models import OutboxMessage
from kizuna.segments import rules

ENTERED = "segment.entered"
EXITED = "segment.exited"
METRICS_REFRESHED = "metrics.refreshed"
# Outbox topics that say nothing about a customer's data: a segment's own entries and exits would otherwise
# make the next incremental refresh re-check every customer it just added.
NOT_CHANGES = (ENTERED, EXITED, "segments.refresh_due", "import.queued", "import.completed")
# Metrics written by the CLV run (analytics.metrics.save_clv) rather than the score refresh.
CLV_METRICS = frozenset({"clv", "churn_risk", "p_alive"})

_scratch = MetaData()
# Temporary: private to the connection, gone with it (and dropped at commit on PostgreSQL).
candidates = Table(
    "segment_refresh_candidates",
    _scratch,
    Column("customer_id", Integer, primary_key=True),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


@dataclass(frozen=True)
class Changes:
    """What changed after a watermark, for one rule: ``everyone`` when only a full refresh can tell."""

    everyone: bool
    metrics_since: dt.datetime | None  # rows of customer_metrics written from then on are candidates


def since(connection: Connection, watermark: int, rule: Any) -> Changes:
    """Which metric runs the rule must follow since ``watermark`` (one small query over the runs announced)."""
    metrics = {n.metric for n in rules.walk(rule) if isinstance(n, rules.MetricCondition)}
    if not metrics:
        return Changes(everyone=False, metrics_since=None)
    announced = select(OutboxMessage.payload["id"].as_integer()).where(
        OutboxMessage.topic == METRICS_REFRESHED, OutboxMessage.id > watermark
    )
    runs = dict(
        connection.execute(
            select(MetricRun.kind, func.min(MetricRun.started_at))
            .where(MetricRun.id.in_(announced))
            .group_by(MetricRun.kind)
        ).all()
    )
    if "clv" in runs and metrics & CLV_METRICS:
        return Changes(everyone=True, metrics_since=None)
    return Changes(everyone=False, metrics_since=runs.get("scores"))


def write_candidates(connection: Connection, watermark: int, rule: Any, changes: Changes) -> int:
    """Fill the ``candidates`` table with the customers changed after ``watermark``; returns how many."""
    after = OutboxMessage.id > watermark
    parts = [
        select(OutboxMessage.customer_id.label("customer_id")).where(
            after, OutboxMessage.customer_id.is_not(None), OutboxMessage.topic.not_in(NOT_CHANGES)
        ),
        select(OutboxMessage.payload["merged_id"].as_integer()).where(after, OutboxMessage.topic == "customer.merged"),
    ]
    refs = rules.referenced_segments(rule)
    if refs:
        # Entering or leaving a segment this one's rule names is a change for this one.
        parts.append(
            select(OutboxMessage.customer_id).where(
                after,
                OutboxMessage.topic.in_((ENTERED, EXITED)),
                OutboxMessage.payload["segment_id"].as_integer().in_(refs),
            )
        )
    if changes.metrics_since is not None:
        parts.append(select(CustomerMetrics.customer_id).where(CustomerMetrics.computed_at >= changes.metrics_since))
    found = union(*parts).subquery()
    candidates.drop(connection, checkfirst=True)
    candidates.create(connection)
    connection.execute(
        insert(candidates).from_select(["customer_id"], select(found.c[0]).where(found.c[0].is_not(None)))
    )
    if connection.dialect.name == "postgresql":
        # A temporary table has no statistics until analysed: the planner would guess its size.
        connection.exec_driver_sql(f"ANALYZE {candidates.name}")
    return int(connection.scalar(select(func.count()).select_from(candidates)) or 0)


def drop_candidates(connection: Connection) -> None:
    candidates.drop(connection, checkfirst=True)
