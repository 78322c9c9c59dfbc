"""A synthetic won/lost history built through the real services: the outcome depends on the number of meetings
(two or more: won 9 times in 10; fewer: won 1 time in 10); the calls and the amounts are noise."""

from __future__ import annotations

import random
from decimal import Decimal

from sqlalchemy.engine import Engine

from kizuna.db import transaction
from kizuna.sales import activities, deals, pipelines
from kizuna.sales.schemas import ActivityCreate, DealCreate
from tests import factories


def seed_history(db: Engine, *, closed: int, open_deals: int = 3, leads: int = 2, seed: int = 7) -> dict:
    """``closed`` won/lost deals, ``open_deals`` open ones at 提案 (one with many meetings), ``leads`` lead
    customers; returns their ids."""
    rng = random.Random(seed)
    with transaction(db) as s:
        stages = pipelines.stages_of(s, pipelines.default_pipeline(s).id)
        by_kind = {st.kind: st for st in stages if st.kind != "open"}
        proposal = next(st for st in stages if st.name == "提案")
        customer = factories.customer(s, family_name="履歴", given_name="顧客", source="web")
        for i in range(closed):
            meetings = rng.randint(0, 4)
            won = rng.random() < (0.9 if meetings >= 2 else 0.1)
            deal = deals.create_deal(
                s,
                actor=factories.SYSTEM,
                data=DealCreate(
                    name=f"過去案件{i}", customer_id=customer.id, amount=Decimal(rng.randint(1, 50) * 100_000)
                ),
            )
            for m in range(meetings):
                activities.log_activity(
                    s,
                    actor=factories.SYSTEM,
                    data=ActivityCreate(kind="meeting", subject=f"打合せ{m}", deal_id=deal.id),
                )
            # Calls are noise: they blur the total of activities, so only the meetings tell won from lost.
            for c in range(rng.randint(0, 4)):
                activities.log_activity(
                    s, actor=factories.SYSTEM, data=ActivityCreate(kind="call", subject=f"電話{c}", deal_id=deal.id)
                )
            target = by_kind["won" if won else "lost"]
            deals.move_deal(s, actor=factories.SYSTEM, deal_id=deal.id, stage_id=target.id,
                            lost_reason=None if won else "予算不足")  # fmt: skip
        open_ids = []
        for i in range(open_deals):
            deal = deals.create_deal(
                s,
                actor=factories.SYSTEM,
                data=DealCreate(
                    name=f"商談中{i}", customer_id=customer.id, amount=Decimal(1_000_000), stage_id=proposal.id
                ),
            )
            # The first open deal has many meetings: the model should put it first and say why.
            for m in range(4 if i == 0 else 0):
                activities.log_activity(
                    s,
                    actor=factories.SYSTEM,
                    data=ActivityCreate(kind="meeting", subject=f"打合せ{m}", deal_id=deal.id),
                )
            open_ids.append(deal.id)
        lead_ids = [
            factories.customer(
                s, family_name="見込", given_name=f"客{i}", lifecycle_stage="lead" if i else "prospect"
            ).id
            for i in range(leads)
        ]
    return {"open": open_ids, "leads": lead_ids, "customer": customer.id, "proposal": proposal.id}
