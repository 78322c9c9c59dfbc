"""Consent: the newest recorded decision per channel and purpose is in force; no record means no consent."""

from __future__ import annotations

from kizuna.customers import service
from kizuna.customers.schemas import ConsentCreate
from tests import factories


def _decide(session, customer_id, status, at, channel="email"):
    service.record_consent(
        session,
        actor=factories.SYSTEM,
        customer_id=customer_id,
        data=ConsentCreate(channel=channel, status=status, method="web_form", evidence="form v1", recorded_at=at),
    )


def test_no_record_means_no_marketing_consent(session):
    c = factories.customer(session, email="c@example.jp")
    assert not service.has_consent(session, customer_id=c.id, channel="email")


def test_withdrawal_after_grant_stops_consent_and_history_is_kept(session):
    c = factories.customer(session, email="c@example.jp")
    _decide(session, c.id, "granted", factories.at("2025-01-01"))
    assert service.has_consent(session, customer_id=c.id, channel="email")
    _decide(session, c.id, "withdrawn", factories.at("2025-02-01"))
    session.commit()
    assert not service.has_consent(session, customer_id=c.id, channel="email")
    assert not service.has_consent(session, customer_id=c.id, channel="line")
    assert [x.status for x in service.consent_history(session, c.id)] == ["withdrawn", "granted"]
    assert [(x.channel, x.status) for x in service.current_consents(session, c.id)] == [("email", "withdrawn")]


def test_consent_filter_matches_has_consent(client, session):
    yes = factories.customer(session, email="yes@example.jp")
    no = factories.customer(session, email="no@example.jp")
    never = factories.customer(session, email="never@example.jp")
    _decide(session, yes.id, "granted", factories.at("2025-01-01"))
    _decide(session, no.id, "granted", factories.at("2025-01-01"))
    _decide(session, no.id, "withdrawn", factories.at("2025-03-01"))
    session.commit()
    granted = {c["id"] for c in client.get("/api/v1/customers?email_consent=true").json()["items"]}
    refused = {c["id"] for c in client.get("/api/v1/customers?email_consent=false").json()["items"]}
    assert granted == {yes.id}
    assert refused == {no.id, never.id}


def test_a_back_dated_or_future_grant_cannot_override_a_later_withdrawal(client, session):
    c = factories.customer(session, email="late@example.jp")
    session.commit()
    future = client.post(
        f"/api/v1/customers/{c.id}/consents",
        json={"channel": "email", "status": "granted", "method": "web", "recorded_at": "2099-01-01T00:00:00Z"},
    )
    assert future.status_code == 422 and future.json()["error"]["field"] == "recorded_at"
    assert (
        client.post(
            f"/api/v1/customers/{c.id}/consents", json={"channel": "email", "status": "granted", "method": "web"}
        ).status_code
        == 201
    )
    assert (
        client.post(
            f"/api/v1/customers/{c.id}/consents",
            json={
                "channel": "email",
                "status": "withdrawn",
                "method": "unsubscribe_link",
                "recorded_at": "2020-01-01T00:00:00Z",
            },
        ).status_code
        == 201
    )
    assert not service.has_consent(session, customer_id=c.id, channel="email")
    assert client.get("/api/v1/customers?email_consent=true").json()["items"] == []
