"""The company read: contacts with their last activity, spend by the one definition, merged recent activity."""

from __future__ import annotations

from contextlib import contextmanager
from decimal import Decimal

from sqlalchemy import event

from kizuna.customers import merge
from kizuna.customers import service as customers
from kizuna.customers.company360 import company_360
from kizuna.customers.schemas import CompanyCreate, NoteCreate
from tests import factories


def make_company(session, contacts: int, name: str = "テスト") -> tuple[int, list[int]]:
    company = customers.create_company(session, actor=factories.SYSTEM, data=CompanyCreate(name=f"株式会社{name}"))
    session.flush()
    ids = []
    for n in range(contacts):
        c = factories.customer(
            session, family_name=f"社員{n:02d}", email=f"p{n}@{company.id}.test.co.jp", company_id=company.id
        )
        factories.event(
            session, customer_id=c.id, type="page_view", channel="web", occurred_at=factories.at(f"2024-01-{n + 1:02d}")
        )
        factories.order(
            session, customer_id=c.id, ordered_at=factories.at(f"2023-12-{n + 1:02d}"), lines=[], total_amount=100
        )
        ids.append(c.id)
    session.commit()
    return company.id, ids


@contextmanager
def statements(session):
    seen: list[str] = []
    engine = session.get_bind()

    def count(*args) -> None:  # noqa: ANN002
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_contacts_carry_their_last_activity_and_spend_is_summed(session):
    company_id, ids = make_company(session, 3)
    customers.add_note(session, actor=factories.SYSTEM, customer_id=ids[0], data=NoteCreate(body="訪問した"))
    session.commit()
    view = company_360(session, actor=factories.SYSTEM, company_id=company_id)
    assert view.contact_count == 3
    assert [c.full_name for c in view.contacts] == ["社員00 太郎", "社員01 太郎", "社員02 太郎"]
    last = {c.id: c.last_activity_at for c in view.contacts}
    assert last[ids[1]] == factories.at("2024-01-02") and last[ids[2]] == factories.at("2024-01-03")
    assert last[ids[0]] > factories.at("2025-01-01")  # the note, written now
    assert (view.currency, view.lifetime_revenue, view.order_count) == ("JPY", Decimal("300"), 3)


def test_recent_activity_merges_contacts_newest_first_and_stops_at_the_limit(session):
    company_id, ids = make_company(session, 4)
    outsider = factories.customer(session, email="out@example.jp")
    factories.event(
        session, customer_id=outsider.id, type="page_view", channel="web", occurred_at=factories.at("2024-06-01")
    )
    session.commit()
    view = company_360(session, actor=factories.SYSTEM, company_id=company_id, activity_limit=5)
    got = [(a.customer_id, a.item.kind, a.item.occurred_at) for a in view.recent_activity]
    assert got == [
        (ids[3], "event", factories.at("2024-01-04")),
        (ids[2], "event", factories.at("2024-01-03")),
        (ids[1], "event", factories.at("2024-01-02")),
        (ids[0], "event", factories.at("2024-01-01")),
        (ids[3], "order", factories.at("2023-12-04")),
    ]
    assert view.recent_activity[0].customer_name == "社員03 太郎"


def test_contacts_page_by_cursor_and_merged_records_are_not_contacts(session):
    company_id, ids = make_company(session, 5)
    merge.merge_customers(session, actor=factories.SYSTEM, survivor_id=ids[0], merged_id=ids[4], reason="same")
    session.commit()
    first = company_360(session, actor=factories.SYSTEM, company_id=company_id, contacts_limit=2)
    assert first.contact_count == 4 and len(first.contacts) == 2 and first.contacts_next_cursor
    rest = company_360(
        session, actor=factories.SYSTEM, company_id=company_id, contacts_cursor=first.contacts_next_cursor
    )
    assert [c.id for c in first.contacts + rest.contacts] == ids[:4]


def test_the_read_costs_no_more_statements_for_30_contacts_than_for_3(session):
    small, _ = make_company(session, 3, "小")
    big, _ = make_company(session, 30, "大")
    costs = []
    for company_id in (small, big):
        session.expire_all()
        with statements(session) as seen:
            company_360(session, actor=factories.SYSTEM, company_id=company_id)
        costs.append(len(seen))
    # A fixed number of statements, whatever the number of contacts: a page read, one grouped query per kind for
    # the last activities, the spend, the merged activity and one load per kind it holds (orders add their lines).
    assert costs[1] <= costs[0] <= 13, costs


def test_api_company_360_is_the_service_read(client, session):
    company_id, _ = make_company(session, 2)
    body = client.get(f"/api/v1/companies/{company_id}/360").json()
    expected = company_360(session, actor=factories.SYSTEM, company_id=company_id).model_dump(mode="json")
    assert body == expected
    assert body["lifetime_revenue"] == "200.00" and len(body["contacts"]) == 2
    assert client.get("/api/v1/companies/999999/360").status_code == 404
