"""Third-party provision records: the function other capabilities call, listing, retention."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, update

from kizuna.auth.models import AuditEntry
from kizuna.auth.permissions import Actor
from kizuna.db import utcnow
from kizuna.errors import PermissionDenied, ValidationError
from kizuna.outbox.models import OutboxMessage
from kizuna.privacy import retention
from kizuna.privacy.models import ThirdPartyProvision
from kizuna.privacy.service import (
    customer_provisions,
    list_provisions,
    purge_expired,
    record_provisions,
    retention_cutoff,
)
from tests import factories
from tests.audiences.conftest import kizuna_cli

ADMIN = Actor.system("test")
MARKETER = Actor(label="m", role="marketer", user_id=None)


def _record(session, ids, **kw):
    args = {
        "customer_ids": ids,
        "recipient": "Partner KK",
        "fields": ["email", "full_name"],
        "via": "webhook",
        "purpose": "order_fulfilment",
        "actor": "system:webhooks",
        "reference": "delivery:7",
    }
    args.update(kw)
    return record_provisions(session, **args)


def test_record_provisions_bulk_inserts_one_row_per_distinct_customer_and_does_not_commit(session):
    a, b = factories.customer(session), factories.customer(session, given_name="花子")
    session.commit()
    assert _record(session, iter([a.id, b.id, a.id])) == 2
    session.rollback()
    assert session.scalar(select(ThirdPartyProvision.id)) is None, "the caller's rollback must undo the records"
    assert _record(session, [a.id, b.id]) == 2
    session.commit()
    rows = list(session.scalars(select(ThirdPartyProvision).order_by(ThirdPartyProvision.customer_id)))
    assert [r.customer_id for r in rows] == [a.id, b.id]
    assert rows[0].fields == ["email", "full_name"] and rows[0].via == "webhook" and rows[0].reference == "delivery:7"
    assert rows[0].provided_at == rows[1].provided_at
    assert _record(session, []) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"recipient": " "}, "recipient must not be empty"),
        ({"fields": []}, "fields must name at least one field"),
        ({"fields": "email"}, "not one string"),
        ({"via": ""}, "via must not be empty"),
        ({"recipient": "x" * 201}, "longer than 200"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(session, change, message):
    with pytest.raises(ValidationError, match=message):
        _record(session, [1], **change)


def test_the_first_record_schedules_the_daily_purge_once(session):
    from kizuna.outbox import registry

    registry.load()
    _record(session, [1])
    _record(session, [2])
    session.commit()
    messages = list(session.scalars(select(OutboxMessage).where(OutboxMessage.topic == retention.TOPIC)))
    assert len(messages) == 1 and messages[0].available_at > utcnow() + dt.timedelta(hours=23)


def test_purge_deletes_only_records_past_three_years_and_is_audited(session):
    _record(session, [1, 2, 3])
    session.commit()
    now = utcnow()
    old = now - dt.timedelta(days=3 * 365 + 2)
    session.execute(update(ThirdPartyProvision).where(ThirdPartyProvision.customer_id == 1).values(provided_at=old))
    session.execute(
        update(ThirdPartyProvision)
        .where(ThirdPartyProvision.customer_id == 2)
        .values(provided_at=now - dt.timedelta(days=3 * 365 - 2))
    )
    session.commit()
    with pytest.raises(PermissionDenied):
        purge_expired(session, actor=MARKETER)
    assert purge_expired(session, actor=ADMIN) == 1
    session.commit()
    assert sorted(session.scalars(select(ThirdPartyProvision.customer_id))) == [2, 3]
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "privacy.provisions_purged"))
    assert entry.details["rows"] == 1
    assert retention_cutoff(dt.datetime(2028, 2, 29, tzinfo=dt.UTC)) == dt.datetime(2025, 2, 28, tzinfo=dt.UTC)


def test_the_worker_purges_on_schedule(session):
    from kizuna.outbox import registry
    from kizuna.outbox.worker import run_once

    registry.load()
    _record(session, [1, 2])
    session.execute(
        update(ThirdPartyProvision)
        .where(ThirdPartyProvision.customer_id == 1)
        .values(provided_at=utcnow() - dt.timedelta(days=4 * 365))
    )
    session.execute(update(OutboxMessage).values(available_at=utcnow() - dt.timedelta(seconds=1)))
    from kizuna.outbox.models import OutboxDelivery

    session.execute(update(OutboxDelivery).values(available_at=utcnow() - dt.timedelta(seconds=1)))
    session.commit()
    run_once(session.get_bind(), limit=50)
    session.expire_all()
    assert list(session.scalars(select(ThirdPartyProvision.customer_id))) == [2]
    # The next purge is queued a day later.
    pending = session.scalar(
        select(OutboxDelivery.id).where(
            OutboxDelivery.subscriber == retention.SUBSCRIBER, OutboxDelivery.status == "pending"
        )
    )
    assert pending is not None


def test_listing_filters_and_permissions(session):
    _record(session, [1, 2], recipient="Google LLC (Google Ads Customer Match)", via="audience_export")
    _record(session, [2], recipient="Partner KK")
    session.commit()
    rows, _ = list_provisions(session, actor=ADMIN, params={"recipient__contains": "Google"})
    assert sorted(r.customer_id for r in rows) == [1, 2]
    rows, _ = list_provisions(session, actor=ADMIN, params={"customer_id": "2", "via": "webhook"})
    assert [r.recipient for r in rows] == ["Partner KK"]
    with pytest.raises(PermissionDenied):
        list_provisions(session, actor=MARKETER, params={})
    mine, total = customer_provisions(session, actor=MARKETER, customer_id=2)
    assert total == 2 and len(mine) == 2


def test_api_lists_for_admins_only(client, client_as, session):
    _record(session, [5], recipient="Partner KK")
    session.commit()
    r = client.get("/api/v1/privacy/provisions", params={"customer_id": 5})
    assert r.status_code == 200
    assert [(i["recipient"], i["fields"]) for i in r.json()["items"]] == [("Partner KK", ["email", "full_name"])]
    assert client.get("/api/v1/privacy/provisions", params={"shoe": 1}).status_code == 422
    assert client_as("marketer").get("/api/v1/privacy/provisions").status_code == 403
    assert client.post("/api/v1/privacy/provisions/purge").json() == {"purged": 0}


def test_cli_lists_as_json_and_purges(db, session, tmp_path):
    _record(session, [9], recipient="Partner KK")
    session.commit()
    r = kizuna_cli(db, tmp_path / "home", "privacy", "provisions", "--customer", "9", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert [x["recipient"] for x in json.loads(r.stdout)] == ["Partner KK"]
    r = kizuna_cli(db, tmp_path / "home", "privacy", "purge")
    assert r.returncode == 0 and "purged 0" in r.stdout


def test_the_customer_360_api_shows_what_was_given_to_whom(client, client_as, session):
    """A rep answering "who has my data?" reads it on the customer's 360, as the page shows it."""
    customer = factories.customer(session, email="ask@example.jp")
    other = factories.customer(session, email="other@example.jp")
    _record(session, [customer.id], recipient="Google Ads", fields=["email_sha256"], via="audience_export")
    _record(session, [customer.id, other.id], recipient="Partner KK")
    session.commit()
    body = client_as("viewer").get(f"/api/v1/customers/{customer.id}/360").json()
    assert body["provisions_total"] == 2
    assert {(p["recipient"], p["via"]) for p in body["provisions"]} == {
        ("Google Ads", "audience_export"),
        ("Partner KK", "webhook"),
    }
    assert client.get(f"/api/v1/customers/{other.id}/360").json()["provisions_total"] == 1
