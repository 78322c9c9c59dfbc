"""The set-based path for new people writes exactly what the full path writes, on both backends."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from kizuna.auth.permissions import Actor
from kizuna.customers.importer import CustomerImporter
from kizuna.customers.models import Consent, Customer, CustomerIdentity
from kizuna.db import transaction
from kizuna.imports.importer import ImportOptions, WriteContext
from kizuna.imports.reader import open_source, records
from kizuna.imports.report import ImportReport
from kizuna.imports.runner import run_import
from tests import factories
from tests.conftest import clean

SYSTEM = Actor.system("test")
ROWS = [
    "会員ID,姓,名,セイ,メイ,メールアドレス,電話番号,生年月日,性別,流入元,タグ,メルマガ,好きな色",
    "M1,山田,太郎,やまだ,たろう,Taro@Example.JP,090-1111-2222,1980/2/3,男,,VIP、新規,はい,赤",
    "M2,佐藤,花子,サトウ,ハナコ,hanako@example.jp,,,,店頭,,いいえ,",
    ",Smith,Anna,,,anna@example.com,+1 650 253 0000,,female,web,,,青",
    "M4,鈴木,一郎,,,stored@example.jp,,,,,,,",  # a stored customer (by e-mail)
    "M5,高橋,次郎,,,jiro@example.jp,080-3333-4444,,,,x,,",
    "M6,高橋,次郎,,,JIRO@example.jp,,,,,y,はい,",  # the row above again, within the file
    "M7,伊藤,三郎,,,saburo@example.jp,080-3333-4444,,,,,,",  # shares the phone of M5: another person, a pair
    "M8,渡辺,四郎,,,shiro@example.jp,070-5555-6666,,,,z,いいえ,",
]


def _write(engine: Engine, path: Path, importer: CustomerImporter) -> ImportReport:
    source = open_source(path, importer.columns)
    options = ImportOptions(file_name=path.name, extra_to_attributes=True)
    report = ImportReport(kind="customers", file=path.name, encoding=source.encoding, dry_run=False)
    rows = [importer.parse(record, options) for record in records(source)]
    with transaction(engine) as session:
        importer.write(session, rows, WriteContext(actor=SYSTEM, options=options, report=report))
    return report


def _snapshot(engine: Engine) -> dict:
    """Everything the import wrote, keyed by content rather than by id."""
    with transaction(engine) as session:
        customers = session.scalars(select(Customer).order_by(Customer.email)).all()
        key = {c.id: c.email for c in customers}
        skip = {"id", "created_at", "updated_at", "tags", "company"}
        return {
            "customers": [
                (
                    {k: v for k, v in vars(c).items() if not k.startswith("_") and k not in skip},
                    [t.name for t in c.tags],
                )
                for c in customers
            ],
            "identities": sorted(
                (key[i.customer_id], i.kind, i.value) for i in session.scalars(select(CustomerIdentity))
            ),
            "consents": sorted(
                (key[c.customer_id], c.channel, c.purpose, c.status, c.method, c.evidence, c.recorded_by)
                for c in session.scalars(select(Consent))
            ),
        }


def test_set_based_and_full_path_write_the_same(db, csv_file):
    path = csv_file(ROWS)
    snapshots, reports = [], []
    for set_based in (True, False):
        clean(db)
        with transaction(db) as session:
            factories.customer(session, email="stored@example.jp", family_name="鈴木", city="札幌市")
        reports.append(_write(db, path, CustomerImporter(set_based=set_based)))
        snapshots.append(_snapshot(db))
    fast, full = snapshots
    assert fast == full
    assert reports[0].counts() == reports[1].counts()
    assert (reports[0].inserted, reports[0].updated, reports[0].duplicates) == (6, 1, 1)
    assert reports[0].notes == reports[1].notes
    assert reports[0].notes["possible duplicates proposed"] == 1
    taro = next(c for c, _tags in fast["customers"] if c["email"] == "taro@example.jp")
    assert taro["attributes"] == {"好きな色": "赤"} and taro["source"] == "import" and taro["version"] == 1
    assert (taro["timezone"], taro["locale"], taro["lifecycle_stage"], taro["status"]) == (
        "Asia/Tokyo",
        "ja",
        "customer",
        "active",
    )


def test_new_people_numbered_in_file_order_and_ids_keep_counting(db, session, csv_file):
    lines = ["external_id,email,phone"] + [f"E{i},p{i}@example.jp,090-{1000 + i:04d}-0000" for i in range(40)]
    report = run_import(db, "customers", csv_file(lines), actor=SYSTEM, batch_size=15)
    assert (report.inserted, report.rejected) == (40, 0)
    stored = session.execute(select(Customer.id, Customer.external_id).order_by(Customer.id)).all()
    assert [external for _id, external in stored] == [f"E{i}" for i in range(40)]
    owners = dict(session.execute(select(CustomerIdentity.value, CustomerIdentity.customer_id)).all())
    assert all(owners[f"E{i}"] == owners[f"p{i}@example.jp"] == stored[i].id for i in range(40))
    # Ids came from the table's own sequence (PostgreSQL) or after the highest (SQLite): the next ones follow.
    later = factories.customer(session, email="later@example.jp")
    session.commit()
    assert later.id > stored[-1].id
    again = run_import(db, "customers", csv_file(lines + ["E99,p99@example.jp,"]), actor=SYSTEM, batch_size=15)
    assert (again.inserted, again.unchanged) == (1, 40)


def test_only_people_nobody_knows_take_the_set_based_path(db, session, csv_file):
    from kizuna.customers.importer.staging import insert_strangers as _insert_strangers

    factories.customer(session, email="stored@example.jp", family_name="鈴木")
    session.commit()
    path = csv_file(ROWS)
    importer = CustomerImporter()
    options = ImportOptions(file_name=path.name)
    rows = [importer.parse(record, options) for record in records(open_source(path, importer.columns))]
    report = ImportReport(kind="customers", file=path.name, encoding="utf-8", dry_run=False)
    with transaction(db) as tx:
        rest = _insert_strangers(tx, rows, WriteContext(actor=SYSTEM, options=options, report=report))
    # The stored customer (line 5) and the three rows that are one person (lines 6-8) are left for the full path.
    assert [row.line for row in rest] == [5, 6, 7, 8]
    assert report.inserted == 4 and report.notes == {"tags added": 3, "consents recorded": 3}


def test_parsers_stage_sqlite_batches_in_files_and_the_result_is_the_same(db, session, csv_file, monkeypatch):
    from kizuna.imports import runner
    from kizuna.imports.importer import Staged

    lines = ["会員ID,姓,名,メールアドレス,電話番号,タグ,メルマガ"]
    for i in range(300):
        lines.append(f"M{i},山田,{i}郎,p{i}@example.jp,090-{2000 + i:04d}-1111,{'VIP' if i % 3 else ''},はい")
        if i % 10 == 0:
            lines.append(f",山田,{i}郎,P{i}@EXAMPLE.JP,080-{2000 + i:04d}-2222,,いいえ")  # the same person
        if i % 50 == 0:
            lines.append(f"B{i},山田,,not-an-email-{i},,,")
    path = csv_file(lines)
    by_one = run_import(db, "customers", path, actor=SYSTEM, workers=1, batch_size=40)
    expected = _snapshot(db)
    clean(db)
    kinds: list[type] = []
    write_batch = runner._write_batch
    monkeypatch.setattr(
        runner,
        "_write_batch",
        lambda bind, imp, batch, *a: (kinds.append(type(batch)), write_batch(bind, imp, batch, *a)),
    )
    by_two = run_import(db, "customers", path, actor=SYSTEM, workers=2, batch_size=40)
    staged = db.dialect.name == "sqlite"
    assert len(kinds) > 5 and set(kinds) == ({Staged} if staged else {list})
    assert (
        (by_two.read, by_two.inserted, by_two.rejected)
        == (by_one.read, by_one.inserted, by_one.rejected)
        == (
            336,
            300,
            6,
        )
    )
    assert by_two.rejects == by_one.rejects
    # Batch boundaries differ, so a repeated person's later consent may be history rather than folded in.
    got = _snapshot(db)
    assert [c for c, _ in got["customers"]] == [
        {**c, "version": v}
        for (c, _), v in zip(expected["customers"], [c["version"] for c, _ in got["customers"]], strict=True)
    ]
    assert [t for _, t in got["customers"]] == [t for _, t in expected["customers"]]
    assert got["identities"] == expected["identities"]
