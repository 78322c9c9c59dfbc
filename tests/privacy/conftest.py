"""A customer with a row in every table that names a customer (for the subject export and erasure tests)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

import kizuna.models  # noqa: F401  (every table on the metadata)
from kizuna.db import Base, utcnow
from tests import factories
from tests.web.conftest import make_user, ui_client  # noqa: F401  (a signed-in UI client for the 360's button)
from tests.web.test_customer360 import person  # noqa: F401  (the 360's fixture: a touchpoint of every timeline kind)


def _add(session: Session, table: str, **values: object) -> int | None:
    result = session.execute(insert(Base.metadata.tables[table]).values(**values))
    key = result.inserted_primary_key
    return key[0] if key else None


def fill_every_table(session: Session, customer_id: int, marker: str) -> None:
    """Rows naming ``customer_id`` in the tables the 360 fixture leaves empty; text fields carry ``marker``."""
    from kizuna.customers.models import Tag, customer_tags
    from kizuna.privacy.service import record_provisions
    from kizuna.sales import deals
    from kizuna.sales.schemas import DealCreate

    now = utcnow()
    other = factories.customer(session, email=f"{customer_id}-pair@example.jp", family_name=f"{marker}候補")
    session.flush()
    _add(session, "customer_duplicates", customer_id=customer_id, other_customer_id=other.id, reason="same name")
    _add(session, "customer_import_marks", customer_id=customer_id, file_sha256="ab" * 32, line=7)
    _add(
        session,
        "customer_metrics",
        customer_id=customer_id,
        currency="JPY",
        order_count=1,
        total_spend=factories.yen(4800),
        first_order_at=now,
        last_order_at=now,
        r=5,
        f=5,
        m=5,
        rfm_segment="champions",
        decile=1,
        computed_at=now,
    )
    tag = Tag(name=f"{marker}タグ")
    session.add(tag)
    session.flush()
    session.execute(insert(customer_tags).values(customer_id=customer_id, tag_id=tag.id))
    deals.create_deal(session, actor=factories.SYSTEM, data=DealCreate(name=f"{marker}の商談", customer_id=customer_id))
    journey = _add(session, "journeys", name=f"{marker}ジャーニー")
    version = _add(session, "journey_versions", journey_id=journey, version=1, definition={"steps": []})
    enrollment = _add(
        session,
        "journey_enrollments",
        journey_id=journey,
        version_id=version,
        customer_id=customer_id,
        entry_key="k",
        step="welcome",
    )
    _add(session, "journey_steps", enrollment_id=enrollment, journey_id=journey, step="welcome")
    _add(session, "line_links", nonce=f"nonce-{marker}", customer_id=customer_id, method="signed_link")
    message = factories.message(session, customer_id=customer_id, key=f"{marker}-open")
    _add(session, "message_events", message_id=message.id, customer_id=customer_id, kind="open", occurred_at=now)
    segment = _add(session, "segments", name=f"{marker}セグメント")
    _add(session, "segment_memberships", segment_id=segment, customer_id=customer_id, entered_at=now)
    outbox = _add(
        session, "outbox", topic="customer.updated", payload={"customer_id": customer_id}, customer_id=customer_id
    )
    _add(
        session,
        "webhook_deliveries",
        message_id=outbox,
        subscription_id=1,
        endpoint_id=1,
        event="customer.updated",
        customer_id=customer_id,
        idempotency_key=f"idem-{marker}",
        body=f'{{"customer_id": {customer_id}, "note": "{marker}"}}',
    )
    _add(
        session,
        "scoring_scores",
        subject="lead",
        customer_id=customer_id,
        probability=0.5,
        method="rules",
        rank_value=0.5,
    )
    _add(
        session,
        "suppressions",
        channel="email",
        address=f"{marker}@example.jp",
        reason="unsubscribed",
        customer_id=customer_id,
        created_by="test",
    )
    record_provisions(
        session,
        customer_ids=[customer_id],
        recipient=f"{marker} Ads",
        fields=["email"],
        via="audience_export",
        purpose="advertising",
        actor="test",
    )
    from kizuna.chat.models import Chat, ChatMessage

    chat = session.scalar(select(Chat).where(Chat.customer_id == customer_id))
    if chat is None:
        chat = Chat(public_id=f"chat-{marker}", secret_hash="0" * 64, customer_id=customer_id)
        session.add(chat)
        session.flush()
    session.add(ChatMessage(chat_id=chat.id, author="customer", text=f"{marker}です、質問があります"))
    session.execute(
        update(Base.metadata.tables["customers"])
        .where(Base.metadata.tables["customers"].c.id == customer_id)
        .values(attributes={"favorite_tea": f"{marker}の煎茶"})
    )
    session.flush()


@pytest.fixture
def subject(session, person):  # noqa: ANN001, ANN201, F811
    """The 360 fixture's customer with a row in every table, and a stranger with rows of their own."""
    from kizuna.fields import service as custom_fields
    from kizuna.fields.schemas import CustomFieldCreate

    data = CustomFieldCreate(entity="customer", key="favorite_tea", type="text", label="好きなお茶")
    custom_fields.create_field(session, actor=factories.SYSTEM, data=data)
    fill_every_table(session, person["id"], "本人")
    stranger = factories.customer(session, email="stranger@example.org", family_name="他人", given_name="秘密子")
    session.flush()
    factories.order(
        session,
        customer_id=stranger.id,
        external_id="ORD-STRANGER",
        ordered_at=factories.at("2024-04-01"),
        lines=[{"sku": "TEA-01", "quantity": 1, "unit_price": 2400}],
    )
    factories.event(
        session, customer_id=stranger.id, type="stranger_visit", channel="web", occurred_at=factories.at("2024-04-02")
    )
    fill_every_table(session, stranger.id, "他人")
    session.commit()
    return {**person, "stranger": stranger.id}
