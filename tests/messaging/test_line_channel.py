"""The LINE channel against a real local HTTP server standing in for api.line.me."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import select

from kizuna.customers import identities
from kizuna.db import utcnow
from kizuna.keys import decrypt
from kizuna.messaging import channels
from kizuna.messaging.channels import Outgoing, PermanentFailure, TemporaryFailure
from kizuna.messaging.line import CHANNEL, save_settings
from kizuna.messaging.line_client import LineClient, LineConfig, plan_multicast
from kizuna.messaging.line_inbound import follow, unfollow
from kizuna.messaging.line_models import LineSettings
from kizuna.messaging.models import Message
from kizuna.messaging.queue import NewMessage, queue
from tests import factories
from tests.messaging.http_fakes import TOKEN

HELLO = [{"type": "text", "text": "こんにちは"}]


def user_id(n: int) -> str:
    return "U" + f"{n:032x}"


def line_customer(session, n: int, **fields):  # noqa: ANN001, ANN201
    customer = factories.customer(session, **fields)
    identities.add_identity(
        session, actor=factories.SYSTEM, customer=customer, kind_name="line_user_id", value=user_id(n)
    )
    return customer


def message_for(session, customer_id: int, key: str = "test:1") -> Message:  # noqa: ANN001
    row = queue(session, NewMessage(key=key, customer_id=customer_id, channel="line", content={"messages": HELLO}))
    session.commit()
    return row


def outgoing(message: Message, address: str, *, attempt: int = 1, **extra) -> Outgoing:  # noqa: ANN003
    return Outgoing(
        message_id=message.id,
        delivery_key=message.delivery_key,
        customer_id=message.customer_id,
        kind=message.kind,
        address=address,
        rendered=message.content,
        attempt=attempt,
        extra=extra,
    )


def test_the_line_channel_is_registered_by_importing_its_module():
    assert channels.get("line") is CHANNEL


def test_push_carries_the_message_delivery_key_as_retry_key(session, line_env):
    customer = line_customer(session, 1)
    message = message_for(session, customer.id)
    address = CHANNEL.addresses(session, [customer.id])[customer.id]
    with CHANNEL.connect(session) as conn:
        result = conn.send(outgoing(message, address))
    (push,) = line_env.pushes()
    assert push.headers["authorization"] == f"Bearer {TOKEN}"
    assert push.headers["x-line-retry-key"] == str(uuid.UUID(hex=message.delivery_key))
    assert push.json() == {"to": user_id(1), "messages": HELLO}
    assert result["status"] == 200 and result["request_id"]
    assert line_env.delivered == [(user_id(1), HELLO)]


CRASHING_SENDER = """
import sys
from kizuna.db import make_engine, new_session
from kizuna.messaging.channels import Outgoing
from kizuna.messaging.line import CHANNEL
from kizuna.messaging.models import Message

engine = make_engine(sys.argv[1])
with new_session(engine) as session:
    m = session.get(Message, int(sys.argv[2]))
    address = CHANNEL.addresses(session, [m.customer_id])[m.customer_id]
    with CHANNEL.connect(session) as conn:
        conn.send(Outgoing(message_id=m.id, delivery_key=m.delivery_key, customer_id=m.customer_id, kind=m.kind,
                           address=address, rendered=m.content, attempt=1))
print("recorded as sent")
"""


def test_a_sender_killed_after_line_accepted_does_not_send_twice(session, db, line_env):
    """First attempt accepted by LINE, the sender dies before reading the answer; the retry is answered 409."""
    customer = line_customer(session, 2)
    message = message_for(session, customer.id)
    line_env.hold.set()  # LINE accepts the push, then its answer waits: the window a crash can fall in
    env = {**os.environ, "KIZUNA_LINE_API_BASE": line_env.url, "KIZUNA_LINE_CHANNEL_TOKEN": TOKEN}
    url = db.url.render_as_string(hide_password=False)
    sender = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", CRASHING_SENDER, url, str(message.id)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert line_env.holding.wait(60), "the sender never reached LINE"
        sender.kill()  # SIGKILL: LINE has accepted, nothing recorded it
        out, _ = sender.communicate(timeout=30)
    finally:
        if sender.poll() is None:
            sender.kill()
    assert sender.returncode != 0 and "recorded as sent" not in out
    line_env.hold.clear()
    line_env.release.set()
    assert len(line_env.delivered) == 1

    # The next attempt (lease expired, another worker) carries the same key: LINE answers 409, nothing is sent.
    address = CHANNEL.addresses(session, [customer.id])[customer.id]
    with CHANNEL.connect(session) as conn:
        result = conn.send(outgoing(message, address, attempt=2))
    assert result["status"] == 409 and result["already_accepted"] is True
    assert result["accepted_request_id"]
    first, second = line_env.pushes()
    assert first.headers["x-line-retry-key"] == second.headers["x-line-retry-key"] == result["retry_key"]
    assert line_env.delivered == [(user_id(2), HELLO)]


def test_a_timeout_after_line_accepted_is_retried_under_the_same_key(session, line_env, settings_env):
    settings_env(line_timeout_seconds=0.5)
    customer = line_customer(session, 3)
    message = message_for(session, customer.id)
    address = CHANNEL.addresses(session, [customer.id])[customer.id]
    line_env.hold.set()
    with CHANNEL.connect(session) as conn, pytest.raises(TemporaryFailure) as lost:
        conn.send(outgoing(message, address))
    assert lost.value.reason == "timeout"
    line_env.hold.clear()
    line_env.release.set()
    with CHANNEL.connect(session) as conn:
        assert conn.send(outgoing(message, address, attempt=2))["already_accepted"]
    assert len(line_env.pushes()) == 2 and len(line_env.delivered) == 1


@pytest.mark.parametrize(
    ("status", "failure", "reason"),
    [
        (429, TemporaryFailure, "rate_limited"),
        (500, TemporaryFailure, "line_unavailable"),
        (503, TemporaryFailure, "line_unavailable"),
        (400, PermanentFailure, "refused"),
        (404, PermanentFailure, "refused"),
    ],
)
def test_line_answers_are_classified(session, line_env, status, failure, reason):
    customer = line_customer(session, 4)
    message = message_for(session, customer.id)
    line_env.answers.append(status)
    with CHANNEL.connect(session) as conn, pytest.raises(failure) as failed:
        conn.send(outgoing(message, user_id(4)))
    assert failed.value.reason == reason
    assert f"forced {status}" in str(failed.value)
    assert line_env.delivered == []


def test_a_refusal_names_lines_own_message(session, line_env):
    customer = line_customer(session, 5)
    message = message_for(session, customer.id)
    empty_text = Outgoing(
        message.id,
        message.delivery_key,
        customer.id,
        "marketing",
        user_id(5),
        {"messages": [{"type": "text", "text": ""}]},
    )
    with CHANNEL.connect(session) as conn, pytest.raises(PermanentFailure) as refused:
        conn.send(empty_text)
    assert refused.value.reason == "refused"
    assert "The request body has 1 error(s)" in str(refused.value) and "messages[0].text" in str(refused.value)
    assert line_env.delivered == []


def test_what_line_would_refuse_is_refused_before_asking(session, line_env):
    customer = line_customer(session, 5)
    message = message_for(session, customer.id)
    with CHANNEL.connect(session) as conn, pytest.raises(PermanentFailure) as refused:
        conn.send(outgoing(message, "U" + "z" * 32))
    assert refused.value.reason == "invalid_address"
    no_messages = Outgoing(message.id, message.delivery_key, customer.id, "marketing", user_id(5), {"messages": []})
    with CHANNEL.connect(session) as conn, pytest.raises(PermanentFailure) as empty:
        conn.send(no_messages)
    assert empty.value.reason == "invalid_content"
    assert line_env.pushes() == []  # neither went out


def test_a_wrong_token_waits_for_a_fix_instead_of_failing_the_message(session, line_env, settings_env):
    settings_env(line_channel_token="not-the-token")
    customer = line_customer(session, 6)
    message = message_for(session, customer.id)
    with CHANNEL.connect(session) as conn, pytest.raises(TemporaryFailure) as failed:
        conn.send(outgoing(message, user_id(6)))
    assert failed.value.reason == "line_unauthorized"


def test_no_token_at_all_is_a_temporary_failure_naming_the_setting(session, settings_env):
    settings_env(line_channel_token="", line_api_base="http://127.0.0.1:9")
    customer = line_customer(session, 7)
    message = message_for(session, customer.id)
    with CHANNEL.connect(session) as conn, pytest.raises(TemporaryFailure, match="KIZUNA_LINE_CHANNEL_TOKEN"):
        conn.send(outgoing(message, user_id(7)))


def test_a_retry_later_than_line_keeps_keys_is_not_sent(session, line_env):
    customer = line_customer(session, 8)
    message = message_for(session, customer.id)
    long_ago = utcnow() - dt.timedelta(hours=25)
    with CHANNEL.connect(session) as conn, pytest.raises(PermanentFailure) as failed:
        conn.send(outgoing(message, user_id(8), attempt=3, first_attempt_at=long_ago))
    assert failed.value.reason == "retry_window_passed"
    assert line_env.pushes() == []
    with CHANNEL.connect(session) as conn:  # a first attempt is never refused for its age
        conn.send(outgoing(message, user_id(8), attempt=1, first_attempt_at=long_ago))
    assert len(line_env.pushes()) == 1


def test_addresses_are_stored_line_ids_of_customers_who_have_not_blocked(session, line_env):
    following = line_customer(session, 10)
    blocked = line_customer(session, 11)
    returned = line_customer(session, 12)
    no_line = factories.customer(session, email="mail-only@example.com")
    for n in (10, 11, 12):
        follow(session, user_id=user_id(n))
    unfollow(session, user_id=user_id(11))
    unfollow(session, user_id=user_id(12))
    follow(session, user_id=user_id(12), unblocked=True)
    # A withdrawal of marketing consent by another way is the sender's gate, not a block.
    factories.consent(session, customer_id=following.id, channel="line", status="withdrawn", method="phone")
    session.commit()
    ids = [following.id, blocked.id, returned.id, no_line.id]
    assert CHANNEL.addresses(session, ids) == {following.id: user_id(10), returned.id: user_id(12)}


def test_multicast_batches_of_500_each_keyed_and_replayable(line_env):
    users = [user_id(n) for n in range(1201)]
    plan = plan_multicast(list(reversed(users)), "campaign:7:line")
    assert [len(b.to) for b in plan] == [500, 500, 201]
    assert len({b.retry_key for b in plan}) == 3
    assert plan == plan_multicast(users + users[:10], "campaign:7:line")  # same users, same batches and keys
    config = LineConfig(token=TOKEN, secret="", api_base=line_env.url)
    with LineClient(config) as client:
        first = client.multicast_all(users, HELLO, key="campaign:7:line")
        # A replay (the campaign's worker died before recording the batches) sends nothing again.
        replay = client.multicast_all(users, HELLO, key="campaign:7:line")
    assert [r["status"] for r in first] == [200, 200, 200]
    assert [r["status"] for r in replay] == [409, 409, 409]
    assert sorted(u for u, _ in line_env.delivered) == sorted(users)
    keys = [r.headers["x-line-retry-key"] for r in line_env.requests if r.path.endswith("multicast")]
    assert keys[:3] == keys[3:] == [b.retry_key for b in plan]


def test_a_failed_batch_stops_the_run_and_the_replay_finishes_it(line_env):
    users = [user_id(n) for n in range(700)]
    config = LineConfig(token=TOKEN, secret="", api_base=line_env.url)
    with LineClient(config) as client:
        client.multicast(plan_multicast(users, "c:1")[0], HELLO)  # batch 0 went out, then LINE failed
        line_env.answers.append(500)
        with pytest.raises(TemporaryFailure):
            client.multicast_all(users, HELLO, key="c:1")
        results = client.multicast_all(users, HELLO, key="c:1")
    assert [r["status"] for r in results] == [409, 200]
    assert len(line_env.delivered) == 700


def test_credentials_saved_on_the_settings_page_are_encrypted_and_used(session, admin, line_env, settings_env):
    settings_env(line_channel_token="")
    save_settings(session, actor=admin, channel_token=TOKEN, channel_secret="s3cret-value", bot_basic_id="@kizuna")
    session.commit()
    row = session.scalar(select(LineSettings))
    assert TOKEN not in row.channel_token and decrypt(row.channel_token) == TOKEN
    assert decrypt(row.channel_secret) == "s3cret-value"
    customer = line_customer(session, 20)
    message = message_for(session, customer.id)
    with CHANNEL.connect(session) as conn:
        assert conn.send(outgoing(message, user_id(20)))["status"] == 200
    assert line_env.pushes()[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_the_sender_stamps_the_first_attempt_and_will_not_retry_past_lines_24_hours(session, db, line_env):
    from kizuna.messaging.sender import send_due

    customer = line_customer(session, 20)
    follow(session, user_id=user_id(20))
    row = queue(
        session,
        NewMessage(key="svc:1", customer_id=customer.id, channel="line", kind="service", content={"messages": HELLO}),
    )
    session.commit()
    line_env.answers.append(500)  # the first attempt fails: a retry is due later
    send_due(db, worker="w1")
    session.expire_all()
    first = session.get(Message, row.id)
    assert first.status == "queued" and first.attempts == 1 and first.first_attempt_at is not None
    stamped = first.first_attempt_at
    # The retry comes a day and more after that first attempt: LINE no longer knows the key, so it is not sent.
    first.first_attempt_at = stamped - dt.timedelta(hours=25)
    first.due_at = utcnow()
    session.commit()
    send_due(db, worker="w1")
    session.expire_all()
    again = session.get(Message, row.id)
    assert again.status == "failed" and again.reason == "retry_window_passed"
    assert again.first_attempt_at == stamped - dt.timedelta(hours=25)  # never moved by a later claim
    assert len(line_env.pushes()) == 1  # the first attempt only
