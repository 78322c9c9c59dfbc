"""LINE's webhook over real HTTP: signature checks, follow/unfollow consent, redeliveries handled once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from kizuna.customers.models import Consent, Customer, CustomerIdentity
from kizuna.db import new_session
from kizuna.messaging.line import CHANNEL
from kizuna.outbox.models import OutboxMessage
from tests import factories
from tests.messaging.http_fakes import SECRET

URL = "/api/v1/line/webhook"


def uid(n: int) -> str:
    return "U" + f"{n:032x}"


def event(
    kind: str,
    user: str,
    *,
    event_id: str | None = None,
    redelivery: bool = False,
    at: int = 1764000000000,
    **extra,  # noqa: ANN003
) -> dict:
    return {
        "type": kind,
        "mode": "active",
        "timestamp": at,
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id or uuid.uuid4().hex.upper()[:26],
        "deliveryContext": {"isRedelivery": redelivery},
        **extra,
    }


def line_signature(body: bytes, secret: str = SECRET) -> str:
    # Written out here as LINE documents it, not taken from the code under test.
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def deliver(web: TestClient, *events: dict, secret: str = SECRET, signature: str | None = None):  # noqa: ANN201
    body = json.dumps({"destination": "U" + "f" * 32, "events": list(events)}, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if signature is None:
        signature = line_signature(body, secret)
    if signature:
        headers["x-line-signature"] = signature
    return web.post(URL, content=body, headers=headers)


@pytest.fixture
def web(app, line_env) -> TestClient:  # noqa: ANN001
    """An HTTP client without any API token, as LINE calls."""
    with TestClient(app) as c:
        yield c


def count(engine, model, *where) -> int:  # noqa: ANN001
    with new_session(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_follow_makes_an_anonymous_line_profile_with_consent(web, db):
    answer = deliver(web, event("follow", uid(1), follow={"isUnblocked": False}))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"handled": {"followed": 1}}
    with new_session(db) as s:
        (customer,) = s.scalars(select(Customer))
        assert customer.attributes == {"anonymous": True} and customer.source == "line"
        assert customer.full_name == "" and customer.email is None
        (identity,) = s.scalars(select(CustomerIdentity))
        assert (identity.kind, identity.value, identity.source) == ("line_user_id", uid(1), "line_follow")
        (consent,) = s.scalars(select(Consent))
        assert (consent.channel, consent.status, consent.method) == ("line", "granted", "line_follow")
        topics = [m.topic for m in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
        assert "line.followed" in topics
        followed = s.scalar(select(OutboxMessage).where(OutboxMessage.topic == "line.followed"))
        assert followed.payload == {"customer_id": customer.id, "anonymous": True, "unblocked": False}
        assert CHANNEL.addresses(s, [customer.id]) == {customer.id: uid(1)}


def test_follow_of_a_known_line_user_records_consent_on_that_customer(web, db, session):
    known = factories.customer(session, email="hanako@example.com")
    from kizuna.customers import identities

    identities.add_identity(session, actor=factories.SYSTEM, customer=known, kind_name="line_user_id", value=uid(2))
    session.commit()
    assert deliver(web, event("follow", uid(2))).status_code == 200
    assert count(db, Customer) == 1
    with new_session(db) as s:
        (consent,) = s.scalars(select(Consent))
        assert consent.customer_id == known.id and consent.method == "line_follow"
        followed = s.scalar(select(OutboxMessage).where(OutboxMessage.topic == "line.followed"))
        assert followed.payload["anonymous"] is False


def test_unfollow_withdraws_consent_and_stops_line_messages(web, db):
    deliver(web, event("follow", uid(3)))
    answer = deliver(web, event("unfollow", uid(3)))
    assert answer.json() == {"handled": {"unfollowed": 1}}
    with new_session(db) as s:
        customer_id = s.scalar(select(Customer.id))
        decisions = [(c.status, c.method) for c in s.scalars(select(Consent).order_by(Consent.id))]
        assert decisions == [("granted", "line_follow"), ("withdrawn", "line_block")]
        assert CHANNEL.addresses(s, [customer_id]) == {}
        assert s.scalar(select(func.count()).where(OutboxMessage.topic == "line.unfollowed")) == 1
    # Unblocking is a follow again.
    deliver(web, event("follow", uid(3), follow={"isUnblocked": True}))
    with new_session(db) as s:
        assert CHANNEL.addresses(s, [customer_id]) == {customer_id: uid(3)}


def test_unfollow_of_an_unknown_user_changes_nothing(web, db):
    assert deliver(web, event("unfollow", uid(4))).json() == {"handled": {"ignored": 1}}
    assert count(db, Customer) == 0 and count(db, Consent) == 0


def test_a_redelivered_event_is_handled_once(web, db):
    first = event("follow", uid(5), event_id="01FZ74A0TDDPYRVKNK77XKC3ZR")
    again = {**first, "deliveryContext": {"isRedelivery": True}}
    assert deliver(web, first).json() == {"handled": {"followed": 1}}
    assert deliver(web, again).json() == {"handled": {"duplicate": 1}}
    # Twice in one delivery, too.
    other = event("unfollow", uid(5))
    assert deliver(web, other, other).json() == {"handled": {"unfollowed": 1, "duplicate": 1}}
    assert count(db, Customer) == 1
    assert count(db, Consent) == 2


def test_a_late_redelivery_does_not_undo_a_newer_follow_or_block(web, db):
    deliver(web, event("follow", uid(11), at=1764000000000))
    deliver(web, event("unfollow", uid(11), at=1764000600000))
    # LINE redelivers a follow from before the block only now.
    late = deliver(web, event("follow", uid(11), at=1764000300000, redelivery=True))
    assert late.json() == {"handled": {"outdated": 1}}
    with new_session(db) as s:
        customer_id = s.scalar(select(Customer.id))
        assert CHANNEL.addresses(s, [customer_id]) == {}
    deliver(web, event("follow", uid(11), at=1764000900000))
    with new_session(db) as s:
        assert CHANNEL.addresses(s, [customer_id]) == {customer_id: uid(11)}


def test_a_forged_signature_is_refused_and_changes_nothing(web, db):
    forged = deliver(web, event("follow", uid(6)), secret="not-the-channel-secret")
    assert forged.status_code == 401
    assert "x-line-signature" in forged.json()["error"]["message"]
    assert deliver(web, event("follow", uid(6)), signature="").status_code == 401  # no signature at all
    # A valid signature of another body.
    body = json.dumps({"events": [event("follow", uid(7))]}).encode()
    tampered = body.replace(uid(7).encode(), uid(8).encode())
    answer = web.post(URL, content=tampered, headers={"x-line-signature": line_signature(body)})
    assert answer.status_code == 401
    assert count(db, Customer) == 0 and count(db, Consent) == 0


def test_lines_verification_request_is_answered(web):
    # The console's "Verify" button sends a signed delivery without events.
    assert deliver(web).json() == {"handled": {}}


def test_without_a_channel_secret_every_delivery_is_refused(web, settings_env):
    settings_env(line_channel_secret="")
    answer = deliver(web, event("follow", uid(9)))
    assert answer.status_code == 401
    assert "KIZUNA_LINE_CHANNEL_SECRET" in answer.json()["error"]["message"]


def test_a_signed_body_that_is_not_lines_json_is_refused(web):
    body = b"[1, 2"
    answer = web.post(URL, content=body, headers={"x-line-signature": line_signature(body)})
    assert answer.status_code == 422


def test_events_from_groups_and_of_other_kinds_are_ignored(web, db):
    in_group = event("follow", uid(10))
    in_group["source"] = {"type": "group", "groupId": "C" + "0" * 32}
    sticker = event("message", uid(10), message={"type": "sticker", "packageId": "1", "stickerId": "1"})
    assert deliver(web, in_group, sticker, event("postback", uid(10))).json() == {"handled": {"ignored": 3}}
    assert count(db, Customer) == 0


def test_two_follows_of_a_new_user_at_once_make_one_profile(db):
    """Two deliveries about one new LINE user (LINE retries webhooks; a follow and a message event come close
    together) handled at the same moment: one profile, no error."""
    import threading

    from kizuna.db import take_write_lock
    from kizuna.messaging.line_inbound import follow

    line_id = "U" + uuid.uuid4().hex
    barrier = threading.Barrier(2)
    owners: list[int | None] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            with new_session(db) as s:
                barrier.wait()
                take_write_lock(s.connection())  # as handle_delivery does (SQLite: one writer from the first read)
                owners.append(follow(s, user_id=line_id))
                s.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with new_session(db) as s:
        stored = s.scalars(select(CustomerIdentity.customer_id).where(CustomerIdentity.value == line_id)).all()
        assert len(stored) == 1 and owners == [stored[0], stored[0]]
        assert s.scalar(select(func.count()).select_from(Consent).where(Consent.customer_id == stored[0])) == 2
