from __future__ import annotations

import csv

import pytest
from sqlalchemy import func, select

from kizuna.auth.models import AuditEntry
from kizuna.auth.permissions import Actor
from kizuna.customers.models import Consent, Customer, CustomerIdentity, CustomerMerge, DuplicatePair
from kizuna.customers.service import has_consent
from kizuna.errors import PermissionDenied
from kizuna.imports.reader import ImportFileError
from kizuna.imports.runner import ImportAborted, run_import
from kizuna.outbox.models import OutboxMessage
from tests import factories
from tests.imports.conftest import refusing_boom

SYSTEM = Actor.system("test")

JAPANESE = [
    "顧客ID,姓,名,セイ,メイ,メールアドレス,電話番号,生年月日,性別,郵便番号,都道府県,市区町村,住所,タグ",
    "C-1,髙橋,花子,たかはし,ハナコ,Hanako@Example.JP,０９０－１２３４－５６７８,1985年4月3日,女性,150-0001,東京都,渋谷区,神宮前①丁目～,VIP、メルマガ",
    "C-2,山田,太郎,ﾔﾏﾀﾞ,ﾀﾛｳ,taro@example.jp,03-1234-5678,1990/1/5,男,,大阪府,大阪市,,",
]


def _customers(session) -> list[Customer]:
    return list(session.scalars(select(Customer).where(Customer.status == "active").order_by(Customer.id)))


def _state(session) -> tuple:
    """Everything a re-import must leave alone."""
    return (
        session.scalar(select(func.count()).select_from(Customer)),
        session.scalar(select(func.sum(Customer.version))),
        session.scalar(select(func.count()).select_from(CustomerIdentity)),
        session.scalar(select(func.count()).select_from(AuditEntry)),
        session.scalar(select(func.count()).select_from(OutboxMessage)),
        session.scalar(select(func.count()).select_from(Consent)),
    )


def test_shift_jis_csv_imports_with_encoding_named_in_report(db, session, csv_file):
    path = csv_file(JAPANESE, encoding="cp932")
    report = run_import(db, "customers", path, actor=SYSTEM)
    assert report.encoding == "cp932"
    assert (report.inserted, report.rejected) == (2, 0)
    hanako, taro = _customers(session)
    assert hanako.family_name == "髙橋"
    assert hanako.address_line == "神宮前1丁目~"  # NFKC: ① → 1, ～ → ~
    assert hanako.family_name_kana == "タカハシ"
    assert taro.family_name_kana == "ヤマダ"


def test_japanese_headers_auto_mapped(db, session, csv_file):
    report = run_import(db, "customers", csv_file(JAPANESE), actor=SYSTEM)
    assert report.encoding == "utf-8"
    assert report.mapping["メールアドレス"] == "email" and report.mapping["セイ"] == "family_name_kana"
    hanako, taro = _customers(session)
    assert (hanako.external_id, hanako.email, hanako.phone) == ("C-1", "hanako@example.jp", "+819012345678")
    assert (hanako.full_name, hanako.full_name_kana) == ("髙橋 花子", "タカハシ ハナコ")
    assert str(hanako.birth_date) == "1985-04-03" and hanako.gender == "female"
    assert [t.name for t in hanako.tags] == ["VIP", "メルマガ"]
    assert taro.phone == "+81312345678" and taro.gender == "male" and taro.postal_code is None
    kinds = session.scalars(select(CustomerIdentity.kind).where(CustomerIdentity.customer_id == hanako.id))
    assert sorted(kinds) == ["email", "external_id", "phone"]


def test_reimport_changes_nothing(db, session, csv_file):
    path = csv_file(
        [*JAPANESE[:1], JAPANESE[1] + ",", "C-3,,,,,dup@example.jp,,,,,,,,", "C-3,,,,,dup@example.jp,,,,,,,,"]
    )
    first = run_import(db, "customers", path, actor=SYSTEM)
    assert (first.inserted, first.duplicates) == (2, 1)
    before = _state(session)
    second = run_import(db, "customers", path, actor=SYSTEM)
    session.expire_all()
    assert (second.inserted, second.updated, second.unchanged, second.merged) == (0, 0, 2, 0)
    assert _state(session) == before


def test_bad_rows_reported_with_line_numbers_good_rows_land(db, session, csv_file, tmp_path):
    path = csv_file(
        [
            "email,phone,family_name,birth_date,address",
            "ok1@example.jp,090-1111-2222,佐藤,,",
            'not-an-email,,鈴木,,"二行の',  # the quoted address spans lines 3 and 4
            '住所"',
            "ok2@example.jp,12,田中,,",
            "ok3@example.jp,,伊藤,1990-13-01,",
            "ok4@example.jp,,渡辺,,",
        ]
    )
    report = run_import(db, "customers", path, actor=SYSTEM, report_path=tmp_path / "rejects.csv")
    # A bad e-mail or phone leaves the row nobody to recognise; a bad birth date costs only the birth date.
    assert report.read == 5 and report.inserted == 3 and report.rejected == 2
    assert [(r.line, r.field) for r in report.rejects] == [(3, "email"), (5, "phone")]
    assert [(w.line, w.field) for w in report.warnings] == [(6, "birth_date")]
    assert "not-an-email" in report.rejects[0].reason
    assert [c.email for c in _customers(session)] == ["ok1@example.jp", "ok3@example.jp", "ok4@example.jp"]
    assert next(c for c in _customers(session) if c.email == "ok3@example.jp").birth_date is None
    with (tmp_path / "rejects.csv").open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["line"], r["field"]) for r in rows] == [("3", "email"), ("5", "phone"), ("6", "birth_date")]
    assert rows[2]["reason"].startswith("warning: birth_date: '1990-13-01' is not a valid date")


def test_a_row_naming_two_customers_by_unique_ids_merges_them_and_a_shared_phone_only_proposes_a_pair(
    db, session, csv_file
):
    a = factories.customer(session, email="a@example.jp", family_name="青木")
    b = factories.customer(session, external_id="S-9", family_name="青木")
    family = factories.customer(session, email="mother@example.jp", phone="090-3333-4444", family_name="別人")
    session.commit()
    path = csv_file(
        [
            "email,external_id,phone,given_name,tags",
            "a@example.jp,S-9,090-3333-4444,一郎,",  # A by e-mail, B by its shop id, and the family's phone
            "new@example.jp,,,次郎,x",
            "NEW@example.jp,,080-5555-6666,,y",  # same person as the row above, within the file
        ]
    )
    report = run_import(db, "customers", path, actor=SYSTEM)
    assert (report.merged, report.updated, report.inserted, report.duplicates) == (1, 1, 1, 1)
    session.expire_all()
    survivor = session.get(Customer, a.id)
    assert survivor.phone == "+819033334444" and survivor.given_name == "一郎" and survivor.external_id == "S-9"
    assert session.get(Customer, b.id).merged_into_id == a.id
    merge = session.scalars(select(CustomerMerge)).one()
    assert (merge.survivor_id, merge.merged_id) == (a.id, b.id) and "same external_id" in merge.reason
    # The phone is a hint: the family member stays a person of their own, proposed for review.
    assert session.get(Customer, family.id).status == "active"
    pair = session.scalars(select(DuplicatePair)).one()
    assert (pair.customer_id, pair.other_customer_id, pair.reason) == (a.id, family.id, "same phone")
    new = session.scalar(select(Customer).where(Customer.email == "new@example.jp"))
    assert new.phone == "+818055556666" and [t.name for t in new.tags] == ["x", "y"]
    assert session.scalar(select(func.count()).where(AuditEntry.action == "customer.merge")) == 1
    assert session.scalar(select(func.count()).where(AuditEntry.action == "import.customers")) == 1


def test_a_row_linking_two_customers_that_each_hold_their_own_email_merges_nothing(db, session, csv_file):
    a = factories.customer(session, email="a@example.jp", family_name="青木")
    b = factories.customer(session, email="b@example.jp", external_id="S-9", family_name="青木")
    session.commit()
    report = run_import(db, "customers", csv_file(["email,external_id,city", "a@example.jp,S-9,札幌市"]), actor=SYSTEM)
    assert (report.merged, report.updated) == (0, 1)
    assert "not merged, proposed for review" in report.warnings[0].reason
    session.expire_all()
    first, second = session.get(Customer, a.id), session.get(Customer, b.id)
    assert first.status == second.status == "active"
    assert first.city == "札幌市" and first.external_id is None  # S-9 stays B's
    assert second.external_id == "S-9"
    pair = session.scalars(select(DuplicatePair)).one()
    assert (pair.customer_id, pair.other_customer_id) == (a.id, b.id)


def test_empty_cells_never_erase_stored_values(db, session, csv_file):
    c = factories.customer(session, email="keep@example.jp", city="札幌市", postal_code="060-0001")
    session.commit()
    report = run_import(db, "customers", csv_file(["email,city,postal_code", "keep@example.jp,函館市,"]), actor=SYSTEM)
    assert report.updated == 1
    session.expire_all()
    stored = session.get(Customer, c.id)
    assert (stored.city, stored.postal_code, stored.version) == ("函館市", "060-0001", 2)


@pytest.mark.parametrize("workers", [1, 2])
def test_crash_mid_import_leaves_failed_batch_unwritten(db, session, csv_file, workers):
    # With two workers on SQLite the parsers stage each batch in a file the writer attaches.
    # A database trigger refuses one row: a failure only the database sees, in the middle of batch 2.
    rows = ["email", "b1@example.jp", "b2@example.jp", "b3@example.jp", "boom@example.jp", "b5@example.jp"]
    with refusing_boom(db), pytest.raises(ImportAborted, match=r"batch \d+ failed") as caught:
        run_import(db, "customers", csv_file(rows), actor=SYSTEM, batch_size=2, workers=workers)
    stored = [c.email for c in _customers(session)]
    if workers == 1:
        assert "batch 2 failed" in str(caught.value) and stored == ["b1@example.jp", "b2@example.jp"]
    # Every batch before the failed one is stored whole, nothing of the failed one is.
    assert stored == rows[1:4][: len(stored)] and len(stored) < 4
    assert session.scalar(select(func.count()).select_from(CustomerIdentity)) == len(stored)
    assert caught.value.report.inserted == len(stored)
    # The import is idempotent, so running it again finishes the job.
    report = run_import(db, "customers", csv_file(rows), actor=SYSTEM, batch_size=2, workers=workers)
    assert (report.inserted, report.unchanged) == (5 - len(stored), len(stored))


def test_missing_required_column_is_fatal_and_writes_nothing(db, session, csv_file):
    with pytest.raises(ImportFileError, match="missing required column: email or phone or external_id"):
        run_import(db, "customers", csv_file(["姓,名", "山田,太郎"]), actor=SYSTEM)
    assert session.scalar(select(func.count()).select_from(Customer)) == 0


def test_duplicate_headers_rejected(db, csv_file):
    with pytest.raises(ImportFileError, match="duplicate header 'email'"):
        run_import(db, "customers", csv_file(["email,phone,email", "a@example.jp,,b@example.jp"]), actor=SYSTEM)
    with pytest.raises(ImportFileError, match="'email' and 'メールアドレス' both map to field 'email'"):
        run_import(db, "customers", csv_file(["email,メールアドレス", "a@example.jp,b@example.jp"]), actor=SYSTEM)


def test_map_option_overrides(db, session, csv_file):
    path = csv_file(["連絡先,会員コード,メモ", "m@example.jp,K-9,"])
    report = run_import(db, "customers", path, actor=SYSTEM, mapping={"連絡先": "email", "会員コード": "external_id"})
    assert report.inserted == 1 and report.ignored_columns == ["メモ"]
    (c,) = _customers(session)
    assert (c.email, c.external_id) == ("m@example.jp", "K-9")
    with pytest.raises(ImportFileError, match="unknown field 'mail'"):
        run_import(db, "customers", path, actor=SYSTEM, mapping={"連絡先": "mail"})


def test_unknown_columns_kept_in_attributes_only_when_asked(db, session, csv_file):
    path = csv_file(["email,会員ランク", "r@example.jp,ゴールド"])
    report = run_import(db, "customers", path, actor=SYSTEM)
    assert report.ignored_columns == ["会員ランク"] and report.rejected == 0
    report = run_import(db, "customers", path, actor=SYSTEM, extra_to_attributes=True)
    assert report.updated == 1 and report.ignored_columns == []
    (c,) = _customers(session)
    assert c.attributes == {"会員ランク": "ゴールド"}


def test_consent_column_recorded_only_when_it_changes(db, session, csv_file):
    path = csv_file(["email,メール配信許諾", "yes@example.jp,はい", "no@example.jp,いいえ"], name="members.csv")
    assert run_import(db, "customers", path, actor=SYSTEM).notes["consents recorded"] == 2
    assert "consents recorded" not in run_import(db, "customers", path, actor=SYSTEM).notes
    consent = session.scalars(select(Consent).where(Consent.status == "granted")).one()
    assert (consent.channel, consent.purpose, consent.method) == ("email", "marketing", "import")
    assert consent.evidence == "members.csv line 2"
    changed = csv_file(["email,email_opt_in", "yes@example.jp,0"], name="optout.csv")
    assert run_import(db, "customers", changed, actor=SYSTEM).notes["consents recorded"] == 1


def test_dry_run_counts_but_writes_nothing(db, session, csv_file):
    report = run_import(db, "customers", csv_file(JAPANESE), actor=SYSTEM, dry_run=True)
    assert (report.dry_run, report.inserted) == (True, 2)
    assert _state(session) == (0, None, 0, 0, 0, 0)


def test_import_needs_data_import_permission(db, csv_file):
    with pytest.raises(PermissionDenied):
        run_import(db, "customers", csv_file(JAPANESE), actor=Actor(label="v", role="viewer"))


def test_a_nul_in_one_cell_rejects_that_row_only(db, session, csv_file):
    from kizuna.auth.permissions import Actor
    from kizuna.imports.runner import run_import

    report = run_import(
        db,
        "customers",
        csv_file(
            [
                "email,姓",
                "a@example.jp,山田",
                "b@example.jp,田\x00中",
                "c@example.jp,佐藤",
            ]
        ),
        actor=Actor.system("test"),
    )
    assert report.inserted == 2
    assert [r.line for r in report.rejects] == [3]
    assert "NUL" in report.rejects[0].reason


def test_encoding_option_overrides_detection_and_names_the_failing_line(db, session, csv_file):
    # Latin-1 bytes such as "é" followed by a letter are also valid CP932, so detection alone would garble them.
    path = csv_file(["email,family_name,given_name", "jose@example.es,Müller,José"], encoding="latin-1")
    report = run_import(db, "customers", path, actor=SYSTEM, encoding="latin-1")
    assert report.encoding == "iso8859-1" and report.inserted == 1
    assert (_customers(session)[0].given_name, _customers(session)[0].family_name) == ("José", "Müller")
    japanese = csv_file(JAPANESE, name="sjis.csv", encoding="cp932")
    assert run_import(db, "customers", japanese, actor=SYSTEM, encoding="Shift_JIS").encoding == "cp932"
    with pytest.raises(ImportFileError, match="line 1 does not decode as utf-8"):
        run_import(db, "customers", japanese, actor=SYSTEM, encoding="utf-8")
    with pytest.raises(ImportFileError, match="unknown encoding 'klingon'"):
        run_import(db, "customers", path, actor=SYSTEM, encoding="klingon")


def test_a_whole_name_column_is_split_into_family_and_given_names(db, session, csv_file):
    path = csv_file(
        [
            "メールアドレス,氏名,フリガナ",
            "taro@example.jp,山田　太郎,やまだ　たろう",  # an ideographic space, a hiragana reading
            "anna@example.com,Anna Smith,",
            "hanako@example.jp,佐藤花子,サトウハナコ",  # no space: kept whole, never guessed
        ]
    )
    report = run_import(db, "customers", path, actor=SYSTEM)
    assert report.mapping == {"メールアドレス": "email", "氏名": "full_name", "フリガナ": "full_name_kana"}
    assert report.inserted == 3 and not report.ignored_columns
    names = {
        c.email: (c.family_name, c.given_name, c.family_name_kana, c.given_name_kana, c.full_name)
        for c in _customers(session)
    }
    assert names == {
        "taro@example.jp": ("山田", "太郎", "ヤマダ", "タロウ", "山田 太郎"),
        "anna@example.com": ("Smith", "Anna", None, None, "Anna Smith"),
        "hanako@example.jp": ("佐藤花子", None, "サトウハナコ", None, "佐藤花子"),
    }
    # Separate name columns, when the file has them, win over the whole name.
    both = csv_file(["email,姓,名,氏名", "taro@example.jp,山田,太朗,山田 太郎"], name="both.csv")
    run_import(db, "customers", both, actor=SYSTEM)
    session.expire_all()
    taro = next(c for c in _customers(session) if c.email == "taro@example.jp")
    assert (taro.family_name, taro.given_name) == ("山田", "太朗")


def test_reimport_of_a_person_repeated_with_other_values_in_later_batches_changes_nothing(db, session, csv_file):
    rows = [
        "email,given_name,city,メルマガ",
        "taro@example.jp,太郎,札幌市,はい",
        "x1@example.jp,,,",
        "x2@example.jp,,,",
        "TARO@example.jp,太朗,函館市,いいえ",  # the same person, two batches later, with other values
        "x3@example.jp,,,",
    ]
    first = run_import(db, "customers", csv_file(rows), actor=SYSTEM, batch_size=2)
    assert (first.inserted, first.updated) == (4, 1)
    before = _state(session)
    again = run_import(db, "customers", csv_file(rows), actor=SYSTEM, batch_size=2)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 5)
    assert _state(session) == before
    session.expire_all()
    taro = next(c for c in _customers(session) if c.email == "taro@example.jp")
    assert (taro.given_name, taro.city, taro.version) == ("太朗", "函館市", 2)
    assert not has_consent(session, customer_id=taro.id, channel="email")
    # An edited file is another file: its rows apply again.
    edited = run_import(db, "customers", csv_file([*rows, "x4@example.jp,,,"], name="edited.csv"), actor=SYSTEM)
    assert edited.inserted == 1
