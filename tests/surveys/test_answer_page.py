"""The public answer page over real HTTP: a GET shows the linked score and records nothing, a POST records, a
second POST through the same link updates the first; forged, expired and cross-site posts, unknown surveys and
scores out of range are refused with nothing written."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kizuna.db import transaction
from kizuna.events.models import Event
from kizuna.surveys import service
from kizuna.surveys.models import SurveyResponse
from kizuna.surveys.schemas import SurveyUpdate
from tests import factories
from tests.surveys.conftest import MARKETER, link_path, survey, token_of


@pytest.fixture
def public(app):  # noqa: ANN001, ANN201
    """A visitor without any sign-in."""
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def world(db):  # noqa: ANN001, ANN201
    with transaction(db) as session:
        s = survey(session)
        c = factories.customer(session, email="hanako@example.jp", family_name="山田", locale="en")
        return {"survey": s.id, "customer": c.id, "path": link_path(session, s.id, c.id, score=3)}


def responses(db) -> list[SurveyResponse]:  # noqa: ANN001
    with transaction(db) as session:
        return list(session.scalars(select(SurveyResponse).order_by(SurveyResponse.id)))


def answered_events(db) -> list[Event]:  # noqa: ANN001
    with transaction(db) as session:
        return list(session.scalars(select(Event).where(Event.type == "nps.answered").order_by(Event.id)))


def test_opening_a_link_shows_the_score_chosen_and_records_nothing(public, world, db):
    for _ in range(3):  # a mail scanner, a preview pane, the customer
        page = public.get(world["path"])
        assert page.status_code == 200
    assert 'value="3" checked' in page.text and "How likely are you to recommend us" in page.text
    assert page.headers["cache-control"] == "no-store, private"
    japanese = public.get(world["path"] + "&lang=ja")
    assert "当店を友人に薦める" in japanese.text and 'lang="ja"' in japanese.text
    assert responses(db) == [] and answered_events(db) == []


def test_posting_records_and_a_second_post_through_the_same_link_updates_it(public, world, db):
    url = world["path"].split("?")[0]
    first = public.post(url, data={"score": "3", "comment": "配送が遅かった"})
    assert first.status_code == 200 and 'data-testid="nps-thanks"' in first.text
    [row] = responses(db)
    assert (row.score, row.comment, row.touchpoint, row.source, row.send_key, row.answers) == (
        3,
        "配送が遅かった",
        "purchase",
        "link",
        "k1",
        1,
    )
    second = public.post(url, data={"score": "8", "comment": "届いたら良かった"})
    assert second.status_code == 200
    [again] = responses(db)
    assert again.id == row.id and (again.score, again.comment, again.answers) == (8, "届いたら良かった", 2)
    assert again.answered_at == row.answered_at and again.updated_at >= row.updated_at
    # The same answer sent twice (a double click) changes nothing and is not a new event.
    public.post(url, data={"score": "8", "comment": "届いたら良かった"})
    assert responses(db)[0].answers == 2
    events = answered_events(db)
    assert [(e.properties["score"], e.properties["category"], e.properties["changed"]) for e in events] == [
        (3, "detractor", False),
        (8, "passive", True),
    ]
    assert events[0].customer_id == world["customer"] and events[0].properties["survey_id"] == world["survey"]
    # Opening the link again shows the answer given.
    page = public.get(url)
    assert 'value="8" checked' in page.text and "届いたら良かった" in page.text
    # The report counts the link once, with its current answer.
    with transaction(db) as session:
        from kizuna.surveys.report import report

        total = report(session, world["survey"], by="touchpoint").total
    assert (total.responses, total.passives, total.nps) == (1, 1, 0.0)


def test_another_send_key_is_another_answer(public, world, db):
    with transaction(db) as session:
        other = link_path(session, world["survey"], world["customer"], send_key="k2", score=10)
    public.post(world["path"].split("?")[0], data={"score": "3"})
    public.post(other.split("?")[0], data={"score": "10"})
    assert sorted((r.send_key, r.score) for r in responses(db)) == [("k1", 3), ("k2", 10)]


@pytest.mark.parametrize("score", ["11", "-1", "ten", ""])
def test_a_score_out_of_range_is_refused_and_nothing_is_written(public, world, db, score):
    r = public.post(world["path"].split("?")[0], data={"score": score, "comment": "x"})
    assert r.status_code == 422 and 'data-testid="nps-error"' in r.text
    assert responses(db) == [] and answered_events(db) == []


def test_a_link_with_a_score_out_of_range_opens_with_none_chosen(public, world):
    page = public.get(world["path"].replace("score=3", "score=42"))
    assert page.status_code == 200 and "checked" not in page.text and 'data-testid="nps-bad-score"' in page.text


def test_forged_and_expired_links_get_a_refusal_page(public, world, db):
    token = token_of(world["path"])
    body, mac = token.split(".")
    forged = f"{body}.{mac[:-2]}AA" if not mac.endswith("AA") else f"{body}.{mac[:-2]}BB"
    for method in ("get", "post"):
        r = getattr(public, method)(f"/nps/{forged}", **({"data": {"score": "9"}} if method == "post" else {}))
        assert r.status_code == 400 and 'data-reason="invalid"' in r.text
    with transaction(db) as session:
        old = link_path(session, world["survey"], world["customer"], now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    r = public.get(old)
    assert r.status_code == 410 and 'data-reason="expired"' in r.text
    assert public.post(old.split("?")[0], data={"score": "9"}).status_code == 410
    assert responses(db) == []


def test_a_deleted_survey_and_a_closed_one_are_refused(public, world, db):
    url = world["path"].split("?")[0]
    with transaction(db) as session:
        s = service.get_survey(session, world["survey"])
        service.update_survey(session, s.id, actor=MARKETER, data=SurveyUpdate(active=False, version=s.version))
    r = public.post(url, data={"score": "9"})
    assert r.status_code == 410 and 'data-reason="closed"' in r.text
    assert public.get(url).status_code == 410
    with transaction(db) as session:
        service.delete_survey(session, world["survey"], actor=MARKETER)
    r = public.get(url)
    assert r.status_code == 404 and 'data-reason="gone"' in r.text
    assert responses(db) == []


def test_a_post_from_another_site_is_refused(public, world, db):
    url = world["path"].split("?")[0]
    r = public.post(url, data={"score": "0"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and 'data-reason="cross_site"' in r.text
    r = public.post(url, data={"score": "0"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert responses(db) == []
    same = public.post(
        url, data={"score": "0"}, headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    )
    assert same.status_code == 200 and len(responses(db)) == 1


def test_a_merged_customer_answers_as_the_survivor_and_answers_move_with_merges(public, world, db):
    from kizuna.customers.merge import merge_customers

    url = world["path"].split("?")[0]
    public.post(url, data={"score": "2", "comment": "遅い"})
    with transaction(db) as session:
        survivor = factories.customer(session, email="hanako2@example.jp").id
        merge_customers(
            session, actor=factories.SYSTEM, survivor_id=survivor, merged_id=world["customer"], reason="same person"
        )
    assert [r.customer_id for r in responses(db)] == [survivor]
    # The old link still works and updates the moved answer.
    public.post(url, data={"score": "9"})
    [row] = responses(db)
    assert (row.customer_id, row.score, row.answers) == (survivor, 9, 2)


def test_the_answer_is_on_the_customer_timeline_and_goes_with_an_erased_customer(public, world, db):
    from kizuna.customers import service as customers
    from kizuna.customers.timeline import timeline

    public.post(world["path"].split("?")[0], data={"score": "4", "comment": "説明が足りない"})
    with transaction(db) as session:
        items, _ = timeline(session, world["customer"], kinds=["survey_response"])
    [item] = items
    assert item.title.startswith("NPS 4") and item.data["comment"] == "説明が足りない"
    assert item.data["category"] == "detractor" and item.data["touchpoint"] == "purchase"
    with transaction(db) as session:
        customers.delete_customer(session, actor=factories.SYSTEM, customer_id=world["customer"], expected_version=None)
    assert responses(db) == []


def test_the_customer_page_shows_the_score_and_comment(ui_client, public, world):
    public.post(world["path"].split("?")[0], data={"score": "10", "comment": "最高でした"})
    page = ui_client("viewer").get(f"/customers/{world['customer']}")
    assert page.status_code == 200
    assert "最高でした" in page.text and 'data-testid="nps-comment"' in page.text


def test_a_post_with_an_opaque_origin_is_refused(public, world, db):
    # A sandboxed frame or a data: page posts with ``Origin: null``.
    r = public.post(world["path"].split("?")[0], data={"score": "0"}, headers={"Origin": "null"})
    assert r.status_code == 403 and responses(db) == []


def test_two_answers_through_one_link_at_the_same_moment_make_one_row(world, db):
    import threading

    from kizuna.db import new_session, take_write_lock

    token = token_of(world["path"])
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def answer(score: int) -> None:
        session = new_session(db)
        try:
            barrier.wait()
            take_write_lock(session.connection())
            service.answer(session, token, score=score)
            session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=answer, args=(s,)) for s in (1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    [row] = responses(db)
    assert row.score in (1, 9) and row.answers == 2
    assert len(answered_events(db)) == 2


def test_merging_two_customers_who_answered_under_one_send_key_keeps_the_newer_answer(db):
    from kizuna.customers.merge import merge_customers

    with transaction(db) as session:
        sid = survey(session, name="newsletter").id
        a = factories.customer(session, email="a@example.jp").id
        b = factories.customer(session, email="b@example.jp").id
        # A tool sent the same key ("newsletter-11") to everyone.
        for cid, score, at in (
            (a, 3, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
            (b, 9, dt.datetime(2026, 1, 2, tzinfo=dt.UTC)),
        ):
            path = link_path(session, sid, cid, send_key="newsletter-11", now=at)
            service.answer(session, token_of(path), score=score, now=at)
    with transaction(db) as session:
        merge_customers(session, actor=factories.SYSTEM, survivor_id=a, merged_id=b, reason="same person")
    rows = [r for r in responses(db) if r.survey_id == sid]
    assert [(r.customer_id, r.score) for r in rows] == [(a, 9)]


def test_a_comment_too_long_is_refused_in_the_customers_language(public, world, db):
    r = public.post(world["path"].split("?")[0] + "?lang=ja", data={"score": "5", "comment": "長" * 5001})
    assert r.status_code == 422 and "5,000 文字まで" in r.text and "長" * 5001 in r.text
    assert responses(db) == []
