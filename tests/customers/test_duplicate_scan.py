"""The duplicate scan: each blocking rule finds the pairs it should, and storing them respects earlier decisions."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from kizuna.auth.models import AuditEntry
from kizuna.customers import duplicate_scan, duplicates, merge
from kizuna.customers.duplicate_scan import find_pairs, run_scan, street_key
from kizuna.customers.models import DuplicatePair, DuplicateScan
from kizuna.outbox.models import OutboxMessage
from tests import factories

SYSTEM = factories.SYSTEM


def person(session, **fields):  # noqa: ANN001, ANN003, ANN201
    """A customer with only the fields given (the factory's default given name left out unless named)."""
    fields.setdefault("given_name", None)
    return factories.customer(session, **fields)


def pairs(session, **kwargs) -> dict[tuple[int, int], list[str]]:  # noqa: ANN001, ANN003
    return find_pairs(session, **kwargs).pairs


def stored(session) -> dict[tuple[int, int], tuple[str, str]]:  # noqa: ANN001
    rows = session.execute(
        select(DuplicatePair.customer_id, DuplicatePair.other_customer_id, DuplicatePair.reason, DuplicatePair.status)
    )
    return {(a, b): (reason, status) for a, b, reason, status in rows}


def test_same_name_and_phone_pairs_a_name_typed_with_and_without_the_space(session):
    a = person(session, family_name="山田", given_name="太郎", phone="090-1111-2222")
    b = person(session, family_name="山田太郎", phone="09011112222")
    c = person(session, family_name="山田", given_name="花子", phone="090-1111-2222")  # the same phone, another name
    found = pairs(session)
    assert found[(a.id, b.id)] == ["name_phone"]
    assert (a.id, c.id) not in found and (b.id, c.id) not in found


def test_same_name_and_phone_ignores_case_and_full_width_letters(session):
    a = person(session, family_name="Smith", given_name="John", phone="+1 415 555 0100")
    b = person(session, family_name="ＳＭＩＴＨ", given_name="john", phone="+14155550100")
    assert pairs(session)[(a.id, b.id)] == ["name_phone"]


def test_same_name_and_address_reads_chome_ban_go_as_dashes_and_the_postal_code_without_hyphen(session):
    a = person(session, family_name="佐藤", given_name="花子", postal_code="150-0001", address_line="神宮前1丁目2番3号")
    b = person(session, family_name="佐藤", given_name="花子", postal_code="1500001", address_line="神宮前1-2-3")
    c = person(session, family_name="佐藤", given_name="花子", postal_code="150-0001", address_line="神宮前1-2-4")
    d = person(session, family_name="佐藤", given_name="次郎", postal_code="150-0001", address_line="神宮前1-2-3")
    found = pairs(session)
    assert found[(a.id, b.id)] == ["name_address"]
    assert not {(a.id, c.id), (b.id, c.id), (a.id, d.id), (b.id, d.id)} & set(found)


def test_street_key_makes_the_usual_spellings_one():
    assert street_key("1丁目2番3号") == street_key("1-2-3") == street_key("1丁目2番地3") == street_key("1−2−3")
    assert street_key("1-2-3") != street_key("1-2-4")


def test_same_kana_reading_and_birth_date_pairs_different_kanji(session):
    born = dt.date(1985, 4, 1)
    a = person(session, family_name="斎藤", given_name="誠", family_name_kana="さいとう", given_name_kana="まこと",
               birth_date=born)  # fmt: skip
    b = person(session, family_name="斉藤", given_name="誠", family_name_kana="サイトウ", given_name_kana="マコト",
               birth_date=born)  # fmt: skip
    c = person(session, family_name="斉藤", given_name="誠", family_name_kana="サイトウ", given_name_kana="マコト",
               birth_date=dt.date(1985, 4, 2))  # fmt: skip
    found = pairs(session)
    assert found[(a.id, b.id)] == ["kana_birth"]
    assert (a.id, c.id) not in found and (b.id, c.id) not in found


def test_same_email_user_name_at_another_domain_pairs_but_a_short_one_does_not(session):
    a = person(session, family_name="山田", email="taro.yamada77@gmail.com")
    b = person(session, family_name="高橋", email="taro.yamada77@example.co.jp")
    c = person(session, family_name="鈴木", email="info@example.jp")
    d = person(session, family_name="田中", email="info@example.com")
    found = pairs(session)
    assert found[(a.id, b.id)] == ["email_local"]
    assert (c.id, d.id) not in found


def test_a_pair_found_by_several_rules_lists_them_all_in_its_reason(session):
    common = {"family_name": "山田", "given_name": "太郎", "postal_code": "100-0001", "address_line": "1-1-1"}
    a = person(session, **common, family_name_kana="ヤマダ", given_name_kana="タロウ", birth_date=dt.date(1970, 1, 1))
    b = person(session, **common, family_name_kana="ヤマダ", given_name_kana="タロウ", birth_date=dt.date(1970, 1, 1))
    session.flush()
    scan = run_scan(session, actor=SYSTEM)
    assert stored(session)[(a.id, b.id)] == ("same name_address+kana_birth", "open")
    assert (scan.candidates, scan.proposed, scan.status) == (1, 1, "done")


def test_never_pairs_a_customer_with_itself_nor_customers_without_the_values(session):
    person(session, family_name="山田", given_name="太郎", phone="090-1111-2222", postal_code="100-0001",
           address_line="1-1-1", family_name_kana="ヤマダ", birth_date=dt.date(1970, 1, 1),
           email="taro.yamada@example.jp")  # fmt: skip
    person(session, family_name="山田", given_name="太郎")
    person(session, family_name="山田", given_name="太郎")
    assert pairs(session) == {}


def test_a_block_larger_than_the_limit_is_counted_not_paired(session):
    for n in range(4):
        person(session, family_name="山田", given_name="太郎", postal_code="100-0001", address_line=f"1-1-{n % 1 + 1}")
    person(session, family_name="佐藤", given_name="花子", postal_code="100-0002", address_line="2-2-2")
    person(session, family_name="佐藤", given_name="花子", postal_code="100-0002", address_line="2-2-2")
    result = find_pairs(session, max_block=3, only=("name_address",))
    assert len(result.pairs) == 1
    tally = result.by_rule["name_address"]
    assert (tally.blocks, tally.pairs, tally.oversized) == (1, 1, 1)


def test_merged_customers_are_not_paired(session):
    born = dt.date(1990, 5, 5)
    a = person(session, family_name="中村", given_name="蓮", family_name_kana="ナカムラ", given_name_kana="レン",
               birth_date=born)  # fmt: skip
    b = person(session, family_name="中村", given_name="蓮", family_name_kana="ナカムラ", given_name_kana="レン",
               birth_date=born)  # fmt: skip
    c = person(session, family_name="中村", given_name="蓮", family_name_kana="ナカムラ", given_name_kana="レン",
               birth_date=born)  # fmt: skip
    merge.merge_customers(session, actor=SYSTEM, survivor_id=a.id, merged_id=c.id, reason="test")
    session.flush()
    assert set(pairs(session)) == {(a.id, b.id)}


@pytest.mark.parametrize("read_all_known", [False, True])
def test_a_dismissed_pair_is_not_proposed_again_and_a_second_scan_proposes_nothing(
    session, monkeypatch, read_all_known
):
    if read_all_known:  # the path of a scan with many candidates: every known pair read at once
        monkeypatch.setattr(duplicates, "READ_ALL_KNOWN", 0)
    born = dt.date(1990, 5, 5)
    a = person(session, family_name="中村", family_name_kana="ナカムラ", birth_date=born)
    b = person(session, family_name="仲村", family_name_kana="ナカムラ", birth_date=born)
    c = person(session, family_name="中邑", family_name_kana="ナカムラ", birth_date=born)
    session.flush()
    first = run_scan(session, actor=SYSTEM)
    assert first.proposed == 3
    pair = session.scalar(select(DuplicatePair).where(DuplicatePair.customer_id == a.id,
                                                      DuplicatePair.other_customer_id == b.id))  # fmt: skip
    duplicates.dismiss(session, actor=SYSTEM, pair_id=pair.id)
    second = run_scan(session, actor=SYSTEM)
    assert (second.candidates, second.proposed) == (3, 0)
    assert stored(session) == {
        (a.id, b.id): ("same kana_birth", "dismissed"),
        (a.id, c.id): ("same kana_birth", "open"),
        (b.id, c.id): ("same kana_birth", "open"),
    }


def test_a_scan_is_audited_with_its_figures(session):
    person(session, family_name="中村", family_name_kana="ナカムラ", birth_date=dt.date(1990, 5, 5))
    person(session, family_name="仲村", family_name_kana="ナカムラ", birth_date=dt.date(1990, 5, 5))
    session.flush()
    scan = run_scan(session, actor=SYSTEM)
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "duplicate.scan"))
    assert entry.entity_id == str(scan.id)
    assert entry.details["proposed"] == 1 and entry.details["rules"]["kana_birth"]["pairs"] == 1


def test_asking_for_a_scan_while_one_waits_joins_it(session):
    first = duplicate_scan.request_scan(session, actor=SYSTEM)
    again = duplicate_scan.request_scan(session, actor=SYSTEM)
    assert again.id == first.id and first.status == "queued"
    messages = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == duplicate_scan.TOPIC)).all()
    assert [m.payload for m in messages] == [{"scan_id": first.id}]
    run_scan(session, actor=SYSTEM, scan_id=first.id)
    third = duplicate_scan.request_scan(session, actor=SYSTEM)
    assert third.id != first.id
    assert session.get(DuplicateScan, first.id).status == "done"


def test_a_scan_run_twice_for_one_request_changes_nothing_the_second_time(session):
    born = dt.date(1990, 5, 5)
    person(session, family_name="中村", family_name_kana="ナカムラ", birth_date=born)
    queued = duplicate_scan.request_scan(session, actor=SYSTEM)
    person(session, family_name="仲村", family_name_kana="ナカムラ", birth_date=born)
    session.flush()
    done = run_scan(session, actor=SYSTEM, scan_id=queued.id)
    finished = done.finished_at
    again = run_scan(session, actor=SYSTEM, scan_id=queued.id)
    assert again.id == done.id and again.finished_at == finished and again.proposed == 1


def test_api_asks_for_a_scan_that_the_worker_runs(client, session):
    from kizuna.outbox.worker import run_once

    born = dt.date(1990, 5, 5)
    a = person(session, family_name="中村", family_name_kana="ナカムラ", birth_date=born)
    b = person(session, family_name="仲村", family_name_kana="ナカムラ", birth_date=born)
    session.commit()
    assert client.get("/api/v1/customers/duplicates/scan").status_code == 404
    asked = client.post("/api/v1/customers/duplicates/scan")
    assert asked.status_code == 202 and asked.json()["status"] == "queued"
    assert client.get("/api/v1/customers/duplicates/scan").json()["id"] == asked.json()["id"]
    assert run_once(session.get_bind()).done == 1
    latest = client.get("/api/v1/customers/duplicates/scan").json()
    assert (latest["status"], latest["proposed"], latest["details"]["rules"]["kana_birth"]["pairs"]) == ("done", 1, 1)
    [pair] = client.get("/api/v1/customers/duplicates").json()
    assert (pair["customer_id"], pair["other_customer_id"], pair["reason"]) == (a.id, b.id, "same kana_birth")


def test_the_worker_reads_without_holding_sqlites_write_lock(session, db, monkeypatch):
    """While the worker's scan reads, another connection can write (on SQLite a delivery starts with the lock)."""
    from sqlalchemy import text

    from kizuna.outbox.worker import run_once

    if db.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has no database-wide write lock")
    person(session, family_name="中村", family_name_kana="ナカムラ", birth_date=dt.date(1990, 5, 5))
    person(session, family_name="仲村", family_name_kana="ナカムラ", birth_date=dt.date(1990, 5, 5))
    duplicate_scan.request_scan(session, actor=SYSTEM)
    session.commit()
    real = duplicate_scan.find_pairs
    wrote = []

    def find_while_someone_writes(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        with db.connect() as other:
            other.exec_driver_sql("PRAGMA busy_timeout=200")  # fail fast instead of waiting for the lock
            other.execute(text("UPDATE customers SET city = '札幌市' WHERE id = 1"))
            other.commit()
            wrote.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(duplicate_scan, "find_pairs", find_while_someone_writes)
    tally = run_once(db)
    assert (tally.done, tally.errors) == (1, []) and wrote == [True]
    session.expire_all()
    assert session.scalar(select(DuplicateScan.proposed)) == 1
