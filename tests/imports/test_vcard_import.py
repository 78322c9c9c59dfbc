"""vCard import: cards as phones and Outlook write them become customers by the same rules as a CSV file."""

from __future__ import annotations

import io
import quopri
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kizuna.auth.models import AuditEntry
from kizuna.auth.permissions import Actor
from kizuna.customers.models import Customer, CustomerMerge, DuplicatePair
from kizuna.db import transaction
from kizuna.errors import ValidationError
from kizuna.imports import job_run, jobs
from kizuna.imports.reader import ImportFileError
from kizuna.imports.runner import run_import
from kizuna.outbox.models import OutboxMessage
from tests import factories

SYSTEM = Actor.system("test")

# An iPhone export (vCard 3.0): Apple's item groups, a folded NOTE, phonetic names, several TELs, one ADR.
IPHONE = (
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "PRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\n"
    "N:山田;太郎;;;\r\n"
    "FN:山田 太郎\r\n"
    "X-PHONETIC-FIRST-NAME:タロウ\r\n"
    "X-PHONETIC-LAST-NAME:ヤマダ\r\n"
    "ORG:株式会社きずな;営業部\r\n"
    "TITLE:部長\r\n"
    "EMAIL;type=INTERNET;type=WORK;type=pref:Taro.Yamada@Example.JP\r\n"
    "EMAIL;type=INTERNET;type=HOME:taro@home.example.jp\r\n"
    "TEL;type=WORK;type=VOICE:03-1234-5678\r\n"
    "item1.TEL;type=CELL;type=pref:090-1111-2222\r\n"
    "item2.ADR;type=WORK:;;神宮前1-2-3;渋谷区;東京都;150-0001;日本\r\n"
    "NOTE:展示会で名刺交換\\n来月に再訪\\, 資料送付済み。長いメモは折り返されて\r\n"
    " 次の行に続く\r\n"
    "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGBwkIBwcHBwgIC\r\n"
    " QoMCgcHCwwMDAsKCwoKDQ0QDQ8PDg0N\r\n"
    "END:VCARD\r\n"
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "N:Smith;Jane;;;\r\n"
    "FN:Jane Smith\r\n"
    "SORT-STRING:スミス ジェーン\r\n"
    "EMAIL;type=INTERNET:jane@example.com\r\n"
    "END:VCARD\r\n"
)


def _qp(text: str, charset: str) -> str:
    return quopri.encodestring(text.encode(charset)).decode("ascii").replace("=\n", "=\r\n")


def outlook_21(name: str = "髙橋;花子", note: str = "①番窓口") -> bytes:
    """A Japanese Outlook export: vCard 2.1, bare parameters, quoted-printable Shift_JIS with a soft line break."""
    lines = [
        "BEGIN:VCARD",
        "VERSION:2.1",
        f"N;CHARSET=SHIFT_JIS;ENCODING=QUOTED-PRINTABLE:{_qp(name, 'cp932')}",
        f"FN;CHARSET=SHIFT_JIS;ENCODING=QUOTED-PRINTABLE:{_qp(name.replace(';', ' '), 'cp932')}",
        f"X-PHONETIC-LAST-NAME;CHARSET=SHIFT_JIS;ENCODING=QUOTED-PRINTABLE:{_qp('タカハシ', 'cp932')}",
        f"ORG;CHARSET=SHIFT_JIS;ENCODING=QUOTED-PRINTABLE:{_qp('有限会社たかはし商店', 'cp932')}",
        "TEL;WORK;VOICE:06-1234-5678",
        "EMAIL;PREF;INTERNET:hanako@example.jp",
        # A long value: quopri breaks it with '=' soft line breaks, which are not RFC folding.
        f"NOTE;CHARSET=SHIFT_JIS;ENCODING=QUOTED-PRINTABLE:{_qp(note * 12, 'cp932')}",
        "END:VCARD",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


# vCard 4.0: SORT-AS carries the reading, TEL as a tel: URI.
V4 = (
    "BEGIN:VCARD\n"
    "VERSION:4.0\n"
    'N;SORT-AS="サトウ,ジロウ":佐藤;次郎;;;\n'
    "FN:佐藤 次郎\n"
    'TEL;VALUE=uri;TYPE="cell,voice";PREF=1:tel:+81-80-3333-4444\n'
    "EMAIL;TYPE=work:jiro@example.jp\n"
    "END:VCARD\n"
)


def _customers(session) -> list[Customer]:
    return list(session.scalars(select(Customer).where(Customer.status == "active").order_by(Customer.id)))


def _write(tmp_path: Path, data: str | bytes, name: str = "contacts.vcf") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_iphone_export_becomes_customers_with_kana_company_and_title(db, session, tmp_path):
    report = run_import(db, "vcard", _write(tmp_path, IPHONE), actor=SYSTEM)
    assert (report.inserted, report.rejected) == (2, 0)
    taro, jane = _customers(session)
    assert (taro.family_name, taro.given_name) == ("山田", "太郎")
    assert (taro.family_name_kana, taro.given_name_kana) == ("ヤマダ", "タロウ")
    assert taro.email == "taro.yamada@example.jp"  # the preferred one
    assert taro.phone == "+819011112222"  # the preferred cell, normalised like a CSV phone
    assert (taro.postal_code, taro.prefecture, taro.city) == ("150-0001", "東京都", "渋谷区")
    assert taro.address_line.startswith("神宮前1-2-3")
    attrs = taro.attributes
    assert (attrs["company"], attrs["department"], attrs["title"]) == ("株式会社きずな", "営業部", "部長")
    assert attrs["note"] == "展示会で名刺交換\n来月に再訪, 資料送付済み。長いメモは折り返されて次の行に続く"
    assert attrs["other_emails"] == "taro@home.example.jp"
    assert attrs["other_phones"] == "work: 03-1234-5678"
    assert jane.email == "jane@example.com" and jane.full_name_kana == "スミス ジェーン"


def test_outlook_quoted_printable_shift_jis_is_decoded(db, session, tmp_path):
    report = run_import(db, "vcard", _write(tmp_path, outlook_21()), actor=SYSTEM)
    assert (report.inserted, report.rejected) == (1, 0)
    (hanako,) = _customers(session)
    assert (hanako.family_name, hanako.given_name, hanako.family_name_kana) == ("髙橋", "花子", "タカハシ")
    assert hanako.attributes["company"] == "有限会社たかはし商店"
    assert hanako.attributes["note"] == "①番窓口" * 12  # across the soft line breaks
    assert hanako.phone == "+81612345678"


def test_vcard_4_reading_from_sort_as_and_tel_uri(db, session, tmp_path):
    run_import(db, "vcard", _write(tmp_path, V4), actor=SYSTEM)
    (jiro,) = _customers(session)
    assert (jiro.family_name_kana, jiro.given_name_kana) == ("サトウ", "ジロウ")
    assert jiro.phone == "+818033334444"


def test_cards_merge_with_stored_customers_by_the_csv_identity_rules(db, session, tmp_path):
    # A customer who came from the shop, and another the card's second e-mail... no: the card's phone names.
    factories.customer(session, email="taro.yamada@example.jp", family_name="山田", source="shop")
    session.commit()
    report = run_import(db, "vcard", _write(tmp_path, IPHONE), actor=SYSTEM)
    assert (report.inserted, report.updated) == (1, 1)
    session.expire_all()
    taro = session.scalar(select(Customer).where(Customer.email == "taro.yamada@example.jp"))
    assert taro.source == "shop" and taro.attributes["title"] == "部長"
    # The same file again changes nothing (idempotent like a CSV import).
    before = session.scalar(select(func.count()).select_from(OutboxMessage))
    again = run_import(db, "vcard", _write(tmp_path, IPHONE), actor=SYSTEM)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert session.scalar(select(func.count()).select_from(OutboxMessage)) == before
    # Audited and announced as a customers import.
    assert session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "import.customers"))


def test_a_card_whose_phone_names_another_customer_is_held_for_review_like_a_csv_row(db, session, tmp_path):
    # A phone is a hint, not an identity (shared office lines): the CSV rule puts the pair up for review.
    factories.customer(session, email="taro.yamada@example.jp")
    factories.customer(session, phone="090-1111-2222")
    session.commit()
    report = run_import(db, "vcard", _write(tmp_path, IPHONE), actor=SYSTEM)
    assert (report.inserted, report.updated) == (1, 1)
    assert session.scalar(select(func.count()).select_from(CustomerMerge)) == 0
    assert session.scalar(select(func.count()).select_from(DuplicatePair)) == 1


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        # Card 2's N is quoted-printable Shift_JIS cut in the middle of a character.
        # Card 3's N is quoted-printable Shift_JIS cut in the middle of a character (a lone lead byte).
        (
            IPHONE.encode() + outlook_21().replace(b"\r\nFN;", b"=82\r\nFN;", 1),
            "card 3, line 29: N does not decode as CP932",
        ),
        (IPHONE.encode().replace("太郎".encode(), b"\xe5\xa4", 1), "card 1, line 4: N does not decode as UTF-8"),
        (V4.encode().replace("次郎".encode(), "次郎".encode("cp932")), "card 1, line 3: N does not decode as UTF-8"),
        (
            IPHONE.encode().replace(b"END:VCARD\r\nBEGIN", b"BEGIN", 1),
            "card 1 (line 1) has no END:VCARD before line 19",
        ),
        (
            b"BEGIN:VCARD\r\nVERSION:3.0\r\nN;ENCODING=QUOTED-PRINTABLE:=Z1=\r\nEND:VCARD\r\n",
            "card 1, line 3: N is not valid quoted-printable",
        ),
        (b"hello\r\n", "line 1: 'hello' is not 'NAME:value'"),
        (b"NOTE:hello\r\n", "line 1: 'NOTE:hello' is outside a card"),
    ],
)
def test_broken_encoding_names_card_and_line_and_stores_nothing(db, session, tmp_path, data, problem):
    with pytest.raises(ImportFileError) as caught:
        run_import(db, "vcard", _write(tmp_path, data), actor=SYSTEM)
    assert problem in caught.value.message
    assert session.scalar(select(func.count()).select_from(Customer)) == 0


def test_vcard_kind_refuses_a_csv_file(db, tmp_path):
    with pytest.raises(ImportFileError, match="not a vCard file"):
        run_import(db, "vcard", _write(tmp_path, "email\r\na@example.jp\r\n", "a.csv"), actor=SYSTEM)


def test_cli_import_vcard_dry_run_then_real(db, session, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from kizuna.config import get_settings
    from kizuna.db import get_engine
    from kizuna.imports.cli import imports_app

    monkeypatch.setenv("KIZUNA_DATABASE_URL", db.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    get_engine.cache_clear()
    runner = CliRunner()
    path = _write(tmp_path, IPHONE)
    try:
        dry = runner.invoke(imports_app, ["vcard", str(path), "--dry-run", "--report", str(tmp_path / "r.csv")])
        assert dry.exit_code == 0, dry.output
        assert "DRY RUN: import vcard" in dry.output
        assert session.scalar(select(func.count()).select_from(Customer)) == 0
        real = runner.invoke(imports_app, ["vcard", str(path), "--report", str(tmp_path / "r.csv")])
        assert real.exit_code == 0, real.output
        assert session.scalar(select(func.count()).select_from(Customer)) == 2
        broken = _write(tmp_path, IPHONE.encode().replace("太郎".encode(), b"\xe5\xa4", 1), "broken.vcf")
        failed = runner.invoke(imports_app, ["vcard", str(broken)])
        assert failed.exit_code == 2 and "broken.vcf: card 1, line 4" in " ".join(failed.output.split())
    finally:
        get_settings.cache_clear()
        get_engine.cache_clear()


def test_api_upload_and_run_of_a_vcf(client, db):
    sent = client.post(
        "/api/v1/imports", data={"kind": "vcard"}, files={"file": ("連絡先.vcf", IPHONE.encode(), "text/vcard")}
    )
    assert sent.status_code == 201, sent.text
    job = sent.json()
    assert job["rows_total"] == 2 and job["mapping"]["company"] == "+attributes"
    shown = client.post(f"/api/v1/imports/{job['id']}/preview", json={})
    assert shown.status_code == 200, shown.text
    first = shown.json()["rows"][0]
    assert first["line"] == 1 and first["values"]["family_name_kana"] == "ヤマダ" and not first["errors"]
    ran = client.post(f"/api/v1/imports/{job['id']}/run")
    assert ran.status_code == 202, ran.text
    assert (ran.json()["status"], ran.json()["counts"]["inserted"]) == ("done", 2)
    bad = client.post(
        "/api/v1/imports",
        data={"kind": "vcard"},
        files={"file": ("bad.vcf", IPHONE.encode().replace("太郎".encode(), b"\xe5\xa4", 1), "text/vcard")},
    )
    assert bad.status_code == 422 and "card 1, line 4" in bad.text


def test_job_of_a_vcf_runs_through_the_worker_path(db):
    from kizuna.auth import service as auth

    with transaction(db) as s:
        actor = auth.actor_for(factories.user(s, email="rep@example.com", role="marketer")).via("api")
    with transaction(db) as s:
        job_id = jobs.upload(s, actor=actor, kind="customers", file_name="a.vcf", stream=io.BytesIO(V4.encode())).id
    with transaction(db) as s:
        jobs.start(s, actor=actor, job_id=job_id)
    assert job_run.execute(db, job_id) == "done"
    with transaction(db) as s:
        assert s.scalar(select(Customer.family_name_kana)) == "サトウ"
    with pytest.raises(ValidationError, match="takes a .vcf file"), transaction(db) as s:
        jobs.upload(s, actor=actor, kind="vcard", file_name="a.csv", stream=io.BytesIO(b"email\r\n"))


def test_cards_are_linked_to_their_company_one_company_per_name(db, session, tmp_path):
    from kizuna.customers.models import Company

    with transaction(db) as s:
        s.add(Company(name="有限会社たかはし商店", attributes={}))
    cards = IPHONE + IPHONE.replace("Taro.Yamada@Example.JP", "hanako.yamada@example.jp").replace(
        "ORG:株式会社きずな;営業部", "ORG:株式会社きずな　;総務部"
    ).replace("090-1111-2222", "090-5555-6666").replace("N:山田;太郎", "N:山田;花子")
    report = run_import(db, "vcard", _write(tmp_path, cards), actor=SYSTEM)
    assert report.inserted == 3
    run_import(db, "vcard", _write(tmp_path, outlook_21()), actor=SYSTEM)
    session.expire_all()
    companies = {c.name: c.id for c in session.scalars(select(Company))}
    # The two cards of 株式会社きずな (one with a trailing full-width space) share one new company; the Outlook
    # card joins the company that was already there; a card without ORG stays without one.
    assert set(companies) == {"株式会社きずな", "有限会社たかはし商店"}
    by_email = {c.email: c.company_id for c in _customers(session)}
    assert by_email["taro.yamada@example.jp"] == by_email["hanako.yamada@example.jp"] == companies["株式会社きずな"]
    assert by_email["jane@example.com"] is None
    takahashi = session.scalar(select(Customer).where(Customer.family_name == "髙橋"))
    assert takahashi.company_id == companies["有限会社たかはし商店"]
    made = session.scalars(select(AuditEntry).where(AuditEntry.action == "company.create")).all()
    assert [e.entity_id for e in made] == [str(companies["株式会社きずな"])]
