"""The whole path with real parts: a segment entry triggers a journey (wait 0 → consent branch → email), the
worker runs outbox, engine and sender, and a real SMTP server receives each mail once; a campaign goes out on
LINE to a local stand-in for LINE's API with a retry key per message. SQLite and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.engine import Engine

from kizuna.auth.permissions import Actor
from kizuna.campaigns import service as campaigns
from kizuna.campaigns.schedule import tick
from kizuna.campaigns.schemas import CampaignCreate
from kizuna.customers import identities
from kizuna.db import new_session, transaction
from kizuna.journeys import service as journeys
from kizuna.journeys import stats as journey_stats
from kizuna.messaging.models import Message, Template
from kizuna.outbox.worker import run_once
from kizuna.segments import service as segments
from kizuna.segments.schemas import SegmentCreate
from tests import factories
from tests.messaging.conftest import Sink, consented_customer, send_all

MARKETER = Actor(label="marketer@example.com", role="marketer", origin="api")
TOKYO = {"attribute": "prefecture", "op": "eq", "value": "東京都"}


def run_worker(engine: Engine, rounds: int = 30) -> None:
    """What `kizuna worker` does, until nothing is left: outbox deliveries, then every pump."""
    for _ in range(rounds):
        tally = run_once(engine, worker="e2e")
        if not (tally.done or tally.failed or tally.pumped):
            return


def test_segment_entry_runs_a_journey_to_a_real_mail_once(db: Engine, mail_ready: Sink) -> None:
    with transaction(db) as s:
        yes = [consented_customer(s, f"yes{i}@example.jp", prefecture="東京都").id for i in range(3)]
        no = factories.customer(s, email="no@example.jp", prefecture="東京都").id
        factories.customer(s, email="osaka@example.jp", prefecture="大阪府")
        s.add(
            Template(name="welcome", channel="email", subject="{{ customer.family_name }}様へ", html="<p>ようこそ</p>")
        )
        segment = segments.create_segment(s, actor=MARKETER, data=SegmentCreate(name="Tokyo", rule=TOKYO))
        segment_id = segment.id
    definition = {
        "name": "Tokyo welcome",
        "trigger": {"type": "segment_entered", "segment": segment_id, "include_initial": True},
        "start": "w",
        "steps": [
            {"id": "w", "type": "wait", "duration": {"minutes": 0}, "next": "b"},
            {"id": "b", "type": "branch", "condition": {"consent": {"channel": "email"}}, "yes": "m", "no": "x"},
            {"id": "m", "type": "send", "channel": "email", "template": "welcome", "next": "x"},
            {"id": "x", "type": "exit"},
        ],
    }
    with transaction(db) as s:
        journey_id = journeys.apply(s, actor=MARKETER, definition=definition).journey.id
    with transaction(db) as s:
        segments.refresh(s, segment_id, actor=MARKETER)
    run_worker(db)
    send_all(db)

    assert sorted(r.to[0] for r in mail_ready.received) == sorted(f"yes{i}@example.jp" for i in range(3))
    assert all(n == 1 for n in mail_ready.by_message_id().values())
    with new_session(db) as s:
        sent = list(s.scalars(select(Message).where(Message.source == "journey")))
        assert {m.customer_id for m in sent} == set(yes) and {m.status for m in sent} == {"sent"}
        assert no not in {m.customer_id for m in sent}
        result = journey_stats.journey_stats(s, journey_id, actor=MARKETER)
    by_step = {step.step: step for step in result.steps}
    assert by_step["w"].entered == 4 and by_step["m"].entered == 3
    assert (by_step["m"].messages or {}).get("sent") == 3
    # Running the worker again sends nothing more.
    run_worker(db)
    send_all(db)
    assert len(mail_ready.received) == 3


def test_a_campaign_goes_out_on_line_with_a_retry_key_per_message(db: Engine, line_env) -> None:  # noqa: ANN001
    with transaction(db) as s:
        ids = []
        for n in range(4):
            c = factories.customer(s, prefecture="東京都")
            identities.add_identity(s, actor=factories.SYSTEM, customer=c, kind_name="line_user_id", value=f"U{n:032x}")
            if n < 3:  # the fourth never followed: no LINE consent on record
                factories.consent(s, customer_id=c.id, channel="line", method="line_follow")
            ids.append(c.id)
        text = {"type": "text", "text": "{{ customer.family_name }}様、冬のセールです"}
        template = Template(name="line-sale", channel="line", body={"messages": [text]})
        s.add(template)
        segment = segments.create_segment(s, actor=MARKETER, data=SegmentCreate(name="Tokyo", rule=TOKYO))
        s.flush()
        data = CampaignCreate(name="LINE sale", channel="line", segment_id=segment.id, template_id=template.id)
        campaign = campaigns.create_campaign(s, actor=MARKETER, data=data)
        campaigns.schedule(s, campaign.id, actor=MARKETER)
        campaign_id = campaign.id
    assert tick(db, force=True) >= 1
    send_all(db)

    pushes = line_env.pushes()
    assert len(pushes) == 3
    keys = [p.headers["x-line-retry-key"] for p in pushes]
    assert len(set(keys)) == 3
    assert all(json.loads(p.body)["messages"][0]["text"] == "山田様、冬のセールです" for p in pushes)
    with new_session(db) as s:
        result = campaigns.stats(s, campaign_id, actor=MARKETER)
    assert result.total.sent == 3 and result.total.skipped == 1 and result.skipped_reasons == {"no_consent": 1}
