"""Several tracking requests stored together (the group commit's batches, ``service.ingest_many``): one statement
of each kind for all of them, yet each request answered as if it had been stored alone, one after the other."""

from __future__ import annotations

from sqlalchemy import func, select

from kizuna.auth.permissions import Actor
from kizuna.customers.models import Customer
from kizuna.db import new_session
from kizuna.events.models import Event
from kizuna.ingest import group, service, sources
from kizuna.ingest.models import Source
from kizuna.outbox.models import OutboxMessage

ADMIN = Actor.system("test")


def _source(db):  # noqa: ANN001, ANN202
    with new_session(db) as s:
        _, key = sources.create_source(s, actor=ADMIN, name="site")
        s.commit()
        return key, sources.authenticate(s, key)


def _page(message_id: str, anonymous_id: str, name: str = "Home") -> dict:
    return {"type": "page", "messageId": message_id, "anonymousId": anonymous_id, "name": name}


def _requests() -> list[service.Incoming]:
    first = [_page("m1", "anon-a"), _page("m2", "anon-b"), {"type": "track", "anonymousId": "anon-a"}]
    # m2 again (the first request kept it), a visitor the first request created, a new one, a call to /v1/page.
    second = [_page("m2", "anon-b"), _page("m3", "anon-a", "Pricing"), _page("m4", "anon-c")]
    return [service.Incoming(first), service.Incoming(second), service.Incoming([_page("m5", "anon-d")], call="page")]


def _stored(db) -> list[tuple]:  # noqa: ANN001
    with new_session(db) as s:
        rows = s.execute(
            select(Event.external_id, Event.type, Event.anonymous_id, Customer.status)
            .join(Customer, Customer.id == Event.customer_id)
            .order_by(Event.external_id)
        ).all()
        return [tuple(r) for r in rows]


def _answers(outcomes: list[service.Outcome]) -> list[tuple]:
    return [(o.accepted, o.duplicates, [(r.index, r.field) for r in o.rejected], o.customers_created) for o in outcomes]


def test_requests_stored_together_answer_and_store_as_if_one_after_the_other(db) -> None:  # noqa: ANN001
    _, source = _source(db)
    with new_session(db) as s:
        together = service.ingest_many(s, source=source, incoming=_requests())
        s.commit()
    assert _answers(together) == [
        (2, 0, [(2, "event")], 2),  # the track call without an event name is rejected, by its index
        (2, 1, [], 1),  # m2 is a duplicate of the first request's; anon-a is known by now, anon-c is new
        (1, 0, [], 1),
    ]
    stored_together = _stored(db)
    with new_session(db) as s:
        outbox = s.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.topic == "events.recorded")
        )
        counted = s.get(Source, source.id)
        assert (outbox, counted.event_count, counted.rejected_count) == (1, 5, 1)
    assert [(e, t, a) for e, t, a, _ in stored_together] == [
        (f"{source.id}:m1", "page_view", "anon-a"),
        (f"{source.id}:m2", "page_view", "anon-b"),
        (f"{source.id}:m3", "page_view", "anon-a"),
        (f"{source.id}:m4", "page_view", "anon-c"),
        (f"{source.id}:m5", "page_view", "anon-d"),
    ]


def test_the_same_requests_one_by_one_give_the_same_answers_and_rows(db) -> None:  # noqa: ANN001
    _, source = _source(db)
    alone = []
    for request in _requests():
        with new_session(db) as s:
            alone += service.ingest_many(s, source=source, incoming=[request])
            s.commit()
    assert _answers(alone) == [(2, 0, [(2, "event")], 2), (2, 1, [], 1), (1, 0, [], 1)]
    assert len(_stored(db)) == 5


def test_a_group_with_a_wrong_key_answers_that_batch_alone(db) -> None:  # noqa: ANN001
    key, _ = _source(db)
    commit = group.GroupCommit(db)
    batches = [
        group.Batch(key, [_page("k1", "anon-x")], None, None, False),
        group.Batch("not-a-key", [_page("k2", "anon-y")], None, None, False),
        group.Batch(key, [_page("k1", "anon-x"), _page("k3", "anon-y")], None, None, False),
    ]

    def never(batch: group.Batch) -> tuple[int, dict]:
        raise AssertionError("the group was stored together; no batch should be stored alone")

    # The first two wait in the queue while a writer is busy; the third finds no writer and stores all three.
    commit._queue.extend(batches[:2])
    status, body = commit.store(batches[2], never)
    assert (status, body["accepted"], body["duplicates"]) == (200, 1, 1)
    assert batches[0].answer[0] == 200 and batches[0].answer[1]["accepted"] == 1
    assert batches[1].answer[0] == 401 and all(b.done for b in batches)
    assert len(_stored(db)) == 2
