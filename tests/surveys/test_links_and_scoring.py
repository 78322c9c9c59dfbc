"""NPS arithmetic and the signed links: categories at their bounds, the score per breakdown, forged, altered,
expired and foreign tokens refused; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from kizuna import keys
from kizuna.errors import ValidationError
from kizuna.messaging import unsubscribe
from kizuna.surveys import links, report, service
from tests import factories
from tests.surveys.conftest import MARKETER, link_path, survey, token_of


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0, "detractor"), (6, "detractor"), (7, "passive"), (8, "passive"), (9, "promoter"), (10, "promoter")],
)
def test_each_score_falls_in_its_category(score, expected):
    assert report.category(score) == expected


@pytest.mark.parametrize("score", [-1, 11])
def test_a_score_outside_0_to_10_has_no_category(score):
    with pytest.raises(ValidationError, match="outside 0-10"):
        report.category(score)


def test_nps_is_promoters_minus_detractors_in_percent():
    assert report.nps(0, 0, 0) is None
    assert report.nps(10, 0, 0) == 100.0
    assert report.nps(0, 0, 3) == -100.0
    # 5 promoters, 3 passives, 2 detractors of 10: 50% - 20% = 30
    assert report.nps(5, 3, 2) == 30.0
    # 1 of 3 each: passives count in the whole but in neither share
    assert report.nps(1, 1, 1) == 0.0
    assert report.nps(2, 0, 1) == 33.3


def test_a_link_names_survey_customer_send_key_and_expiry():
    expires = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    claim = links.read(links.token(3, 42, "abc:def", expires))
    assert claim == links.Claim(3, 42, "abc:def", expires)


def test_forged_altered_foreign_and_expired_tokens_are_refused():
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    good = links.token(1, 2, "k", expires)
    body, mac = good.split(".")
    other = links.token(1, 3, "k", expires)
    with pytest.raises(keys.BadToken):
        links.read(f"{other.split('.')[0]}.{mac}")  # another customer's body under this MAC
    with pytest.raises(keys.BadToken):
        links.read(f"{body}.{'A' * len(mac)}")
    with pytest.raises(keys.BadToken):
        links.read("not-a-token")
    with pytest.raises(keys.BadToken):
        links.read(unsubscribe.token(5))  # signed by this Kizuna, but for unsubscribing
    past = links.token(1, 2, "k", dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    with pytest.raises(links.LinkExpired, match="expired"):
        links.read(past)


def test_the_same_message_always_makes_the_same_links():
    sent = dt.datetime(2026, 5, 1, 9, 30, 12, 345678, tzinfo=dt.UTC)
    make = links.template_function(
        {7: 30}, base_url="https://crm.example.com", customer_id=4, send_key="d1", sent_at=sent
    )
    first, again = make(7), make(7)
    assert first == again and [x["score"] for x in first] == list(range(11))
    assert first[9]["url"].startswith("https://crm.example.com/nps/") and first[9]["url"].endswith("?score=9")
    assert links.read(first[0]["url"].split("/nps/")[1].split("?")[0], now=sent).expires_at == links.expiry(sent, 30)
    with pytest.raises(ValidationError, match="no active survey"):
        make(8)


def test_links_for_a_customer_through_the_service(session):
    s = survey(session)
    c = factories.customer(session, email="a@example.jp")
    found = service.make_links(
        session, actor=MARKETER, survey_id=s.id, customer_id=c.id, base_url="https://crm.example.com/"
    )
    assert len(found.links) == 11 and found.send_key.startswith("link:")
    claim = links.read(token_of(link_path(session, s.id, c.id)))
    assert (claim.survey_id, claim.customer_id, claim.send_key) == (s.id, c.id, "k1")
    with pytest.raises(ValidationError, match="customer 999 does not exist"):
        service.make_links(session, actor=MARKETER, survey_id=s.id, customer_id=999, base_url="https://x")
