"""Journeys under test: definitions built from a few steps, templates, customers and a worker run in-process."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.journeys import service
from kizuna.journeys.models import JourneyEnrollment
from kizuna.messaging.models import Message, Template

MARKETER = Actor(label="marketer@example.com", role="marketer", user_id=None, origin="api")


def template(session: Session, name: str = "welcome-mail", channel: str = "email") -> Template:
    found = Template(
        name=name, channel=channel, subject="ようこそ", text="こんにちは {{ customer.full_name }}", html=""
    )
    session.add(found)
    session.flush()
    return found


def definition(steps: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A definition around ``steps`` (copied: a test may change its copy), entered by hand unless told."""
    steps = copy.deepcopy(steps)
    out: dict[str, Any] = {
        "name": "Welcome",
        "trigger": {"type": "manual"},
        "start": steps[0]["id"],
        "steps": steps,
    }
    out.update(fields)
    return out


def publish(session: Session, raw: dict[str, Any], actor: Actor = MARKETER) -> int:
    applied = service.apply(session, actor=actor, definition=raw)
    session.commit()
    return applied.journey.id


def enrollments(session: Session, journey_id: int) -> list[JourneyEnrollment]:
    session.expire_all()
    return list(
        session.scalars(
            select(JourneyEnrollment).where(JourneyEnrollment.journey_id == journey_id).order_by(JourneyEnrollment.id)
        )
    )


def messages(session: Session) -> list[Message]:
    session.expire_all()
    return list(session.scalars(select(Message).order_by(Message.id)))


@pytest.fixture
def marketer() -> Actor:
    return MARKETER
