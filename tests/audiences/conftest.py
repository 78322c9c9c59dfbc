from __future__ import annotations

import subprocess
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.customers import service as customers
from kizuna.customers.schemas import ConsentCreate
from kizuna.segments import service as segments
from kizuna.segments.schemas import SegmentCreate
from tests import factories
from tests.cli import kizuna as run_kizuna
from tests.factories import SYSTEM


def consent(session: Session, customer_id: int, status: str, *, channel: str = "email") -> None:
    data = ConsentCreate(channel=channel, purpose="advertising", status=status, method="web_form")
    customers.record_consent(session, actor=SYSTEM, customer_id=customer_id, data=data)


def static_segment(session: Session, name: str, ids: list[int]) -> int:
    segment = segments.create_segment(session, actor=SYSTEM, data=SegmentCreate(name=name, kind="static"))
    segments.build_static(session, segment.id, actor=SYSTEM, customer_ids=ids, source={"from": "test"})
    return segment.id


def world(session: Session) -> dict[str, Any]:
    """Five members of one static segment: two that may go to ad platforms, three that may not."""
    yes = factories.customer(
        session,
        email="Taro.Yamada@gmail.com",
        phone="090-1234-5678",
        family_name="山田",
        given_name="太郎",
        postal_code="150-0002",
        prefecture="東京都",
        city="渋谷区",
        country="JP",
    )
    consent(session, yes.id, "granted")
    phone_only = factories.customer(session, phone="080-1111-2222", family_name="佐藤", given_name="花子")
    consent(session, phone_only.id, "granted", channel="phone")
    withdrawn = factories.customer(session, email="withdrawn@example.com")
    consent(session, withdrawn.id, "granted")
    consent(session, withdrawn.id, "withdrawn")
    # Granted on e-mail, later refused on the phone: a no on any channel wins.
    mixed = factories.customer(session, email="mixed@example.com")
    consent(session, mixed.id, "granted")
    consent(session, mixed.id, "withdrawn", channel="phone")
    marketing_only = factories.customer(session, email="marketing@example.com")
    customers.record_consent(
        session,
        actor=SYSTEM,
        customer_id=marketing_only.id,
        data=ConsentCreate(channel="email", purpose="marketing", status="granted", method="web_form"),
    )
    ids = [yes.id, phone_only.id, withdrawn.id, mixed.id, marketing_only.id]
    segment_id = static_segment(session, "広告オーディエンス", ids)
    session.commit()
    return {"segment_id": segment_id, "yes": yes.id, "phone_only": phone_only.id, "ids": ids}


def kizuna_cli(engine: Engine, home: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kizuna(*args, engine=engine, KIZUNA_HOME=str(home))
