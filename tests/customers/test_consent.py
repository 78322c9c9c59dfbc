"""Consent: the newest recorded decision per channel and purpose is in force; no record means no consent."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kizuna.customers import consent, service
from kizuna.customers.filters import CUSTOMER_FILTERS
from kizuna.customers.models import Consent, Customer
from kizuna.customers.schemas import ConsentCreate
from kizuna.imports.runner import run_import
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


# --- one definition: the service, the list filter, the batch reader and the importer agree ------------------

SAME_DAY = "2025-05-05"
# Each customer's history, in the order it is recorded: (channel, purpose, status, recorded_at).
HISTORIES = {
    "regranted@example.jp": [
        ("email", "marketing", "granted", "2025-01-01"),
        ("email", "marketing", "withdrawn", "2025-02-01"),
        ("email", "marketing", "granted", "2025-03-01"),
    ],
    # Same timestamp: the one recorded last is in force, whatever the clock said.
    "tie-withdrawn@example.jp": [
        ("email", "marketing", "granted", SAME_DAY),
        ("email", "marketing", "withdrawn", SAME_DAY),
    ],
    "tie-granted@example.jp": [
        ("email", "marketing", "withdrawn", SAME_DAY),
        ("email", "marketing", "granted", SAME_DAY),
    ],
    # A grant recorded after a withdrawal but dated before it still wins: record order, not recorded_at.
    "backdated-grant@example.jp": [
        ("email", "marketing", "withdrawn", "2025-03-01"),
        ("email", "marketing", "granted", "2025-01-01"),
    ],
    # Other channels and purposes never decide e-mail marketing.
    "other-channels@example.jp": [
        ("email", "marketing", "granted", "2025-01-01"),
        ("line", "marketing", "withdrawn", "2025-02-01"),
        ("email", "service", "withdrawn", "2025-03-01"),
    ],
    "line-only@example.jp": [("line", "marketing", "granted", "2025-01-01")],
    "service-only@example.jp": [("email", "service", "granted", "2025-01-01")],
    "never@example.jp": [],
}
EMAIL_GRANTED = {
    "regranted@example.jp",
    "tie-granted@example.jp",
    "backdated-grant@example.jp",
    "other-channels@example.jp",
}


def _histories(session) -> dict[str, int]:
    ids = {}
    for email, history in HISTORIES.items():
        customer = factories.customer(session, email=email)
        ids[email] = customer.id
        for channel, purpose, status, day in history:
            service.record_consent(
                session,
                actor=factories.SYSTEM,
                customer_id=customer.id,
                data=ConsentCreate(
                    channel=channel, purpose=purpose, status=status, method="web_form", recorded_at=factories.at(day)
                ),
            )
    session.commit()
    return ids


def test_service_filter_and_batch_reader_agree_on_tricky_histories(session):
    ids = _histories(session)
    by_id = {v: k for k, v in ids.items()}
    for channel in ("email", "line"):
        for purpose in ("marketing", "service"):
            one = {
                e
                for e, cid in ids.items()
                if service.has_consent(session, customer_id=cid, channel=channel, purpose=purpose)
            }
            many = consent.statuses_in_force(session, ids.values(), channel=channel, purpose=purpose)
            batch = {by_id[cid] for cid, status in many.items() if status == "granted"}
            chosen = select(Customer.id).where(consent.granted(Customer.id, channel=channel, purpose=purpose))
            expression = {by_id[cid] for cid in session.scalars(chosen)}
            shown = {
                by_id[cid]
                for cid in ids.values()
                for c in service.current_consents(session, cid)
                if (c.channel, c.purpose, c.status) == (channel, purpose, "granted")
            }
            assert one == batch == expression == shown, (channel, purpose)
            if (channel, purpose) == ("email", "marketing"):
                assert one == EMAIL_GRANTED
        for wanted in (True, False):
            condition = CUSTOMER_FILTERS.condition(f"{channel}_consent", "eq", str(wanted).lower())
            listed = {by_id[cid] for cid in session.scalars(select(Customer.id).where(condition))}
            expected = {e for e, cid in ids.items() if service.has_consent(session, customer_id=cid, channel=channel)}
            assert listed == (expected if wanted else set(ids) - expected), (channel, wanted)


@pytest.mark.parametrize("answer", ["1", "0"])
def test_importer_records_a_decision_exactly_where_the_one_in_force_differs(db, session, tmp_path, answer):
    ids = _histories(session)
    in_force = {
        e: next(
            (
                c.status
                for c in service.current_consents(session, cid)
                if (c.channel, c.purpose) == ("email", "marketing")
            ),
            None,
        )
        for e, cid in ids.items()
    }
    path = tmp_path / "answers.csv"
    path.write_text("email,email_opt_in\n" + "".join(f"{e},{answer}\n" for e in HISTORIES), encoding="utf-8")
    run_import(db, "customers", path, actor=factories.SYSTEM)
    session.expire_all()
    recorded = {cid for cid in session.scalars(select(Consent.customer_id).where(Consent.method == "import"))}
    # No decision on record differs from either answer: the file's answer is then the first evidence.
    differs = {e for e, status in in_force.items() if status != ("granted" if answer == "1" else "withdrawn")}
    assert {e for e, cid in ids.items() if cid in recorded} == differs
    now = {e for e, cid in ids.items() if service.has_consent(session, customer_id=cid, channel="email")}
    assert now == (set(ids) if answer == "1" else set())
