"""Exporting a segment as an audience file: who is in it, what is hashed, and the provision records it leaves."""

from __future__ import annotations

import csv
import hashlib
import io

import pytest
from sqlalchemy import select, update

from kizuna.audiences.service import write_audience
from kizuna.auth.models import AuditEntry
from kizuna.auth.permissions import Actor
from kizuna.customers.merge import merge_customers
from kizuna.customers.models import Customer
from kizuna.errors import PermissionDenied, ValidationError
from kizuna.privacy.models import ThirdPartyProvision
from tests import factories
from tests.audiences.conftest import consent, kizuna_cli, world

MARKETER = Actor(label="marketer@example.com", role="marketer", user_id=None, origin="api")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def export(session, segment_id: int, platform: str, actor: Actor = MARKETER) -> tuple[list[dict], object]:
    out = io.BytesIO()
    result = write_audience(session, actor=actor, segment_id=segment_id, platform=platform, out=out)
    text = out.getvalue().decode("utf-8")
    assert not text.startswith("\ufeff"), "Google reads the first header after a BOM as another name"
    return list(csv.DictReader(io.StringIO(text))), result


def test_google_file_has_only_consenting_members_hashed_with_country_and_zip_in_clear(session):
    w = world(session)
    rows, result = export(session, w["segment_id"], "google")
    assert list(rows[0]) == ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]
    assert len(rows) == 2 and result.rows == 2
    assert (result.members, result.without_consent, result.without_identifier) == (5, 3, 0)
    taro = rows[0]
    assert taro == {
        "Email": sha("taroyamada@gmail.com"),
        "Phone": sha("+819012345678"),
        "First Name": sha("太郎"),
        "Last Name": sha("山田"),
        "Country": "JP",
        "Zip": "150-0002",
    }
    # No postal code: the name stays home (Google matches an address only as names + country + zip).
    assert rows[1] == {
        "Email": "",
        "Phone": sha("+818011112222"),
        "First Name": "",
        "Last Name": "",
        "Country": "",
        "Zip": "",
    }


def test_meta_file_hashes_every_key_and_phones_lose_the_plus(session):
    w = world(session)
    rows, _ = export(session, w["segment_id"], "meta")
    assert list(rows[0]) == ["EMAIL", "PHONE", "FN", "LN", "CT", "ST", "ZIP", "COUNTRY"]
    assert rows[0] == {
        "EMAIL": sha("taro.yamada@gmail.com"),
        "PHONE": sha("819012345678"),
        "FN": sha("太郎"),
        "LN": sha("山田"),
        "CT": sha("渋谷区"),
        "ST": sha("東京都"),
        "ZIP": sha("1500002"),
        "COUNTRY": sha("jp"),
    }
    assert rows[1]["PHONE"] == sha("818011112222") and rows[1]["FN"] == sha("花子")


def test_nothing_personal_leaves_in_clear(session):
    w = world(session)
    for platform in ("google", "meta"):
        out = io.BytesIO()
        write_audience(session, actor=MARKETER, segment_id=w["segment_id"], platform=platform, out=out)
        text = out.getvalue().decode()
        for clear in ("Taro", "taro", "gmail", "9012345678", "山田", "太郎", "佐藤", "花子", "渋谷", "東京"):
            assert clear not in text


def test_each_customer_in_the_file_gets_a_provision_record_of_the_fields_handed_over(session):
    w = world(session)
    export(session, w["segment_id"], "google")
    session.commit()
    records = {p.customer_id: p for p in session.scalars(select(ThirdPartyProvision))}
    assert set(records) == {w["yes"], w["phone_only"]}
    taro = records[w["yes"]]
    assert taro.fields == ["email", "phone", "given_name", "family_name", "country", "postal_code"]
    assert records[w["phone_only"]].fields == ["phone"]
    assert taro.recipient.startswith("Google")
    assert (taro.via, taro.purpose, taro.provided_by) == ("audience_export", "advertising", "marketer@example.com")
    assert taro.reference == f"segment:{w['segment_id']}:google"
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "export.audience"))
    assert entry.details["rows"] == 2 and entry.details["without_consent"] == 3


def test_merged_and_non_member_customers_are_left_out(session):
    w = world(session)
    other = factories.customer(session, email="other@example.com")
    consent(session, other.id, "granted")
    # The phone-only member is merged into someone outside the segment: the merged record is no longer active.
    merge_customers(session, actor=factories.SYSTEM, survivor_id=other.id, merged_id=w["phone_only"], reason="test")
    session.commit()
    rows, result = export(session, w["segment_id"], "google")
    assert len(rows) == 1 and rows[0]["Email"] == sha("taroyamada@gmail.com")
    assert result.members == 4


def test_a_role_without_export_rights_and_an_unknown_platform_are_refused(session):
    w = world(session)
    viewer = Actor(label="viewer", role="viewer", user_id=None)
    with pytest.raises(PermissionDenied):
        export(session, w["segment_id"], "google", actor=viewer)
    with pytest.raises(ValidationError, match="unknown ad platform 'tiktok'"):
        export(session, w["segment_id"], "tiktok")
    assert session.scalar(select(ThirdPartyProvision.id)) is None


def test_merges_move_provision_records_to_the_survivor(session):
    w = world(session)
    export(session, w["segment_id"], "meta")
    survivor = factories.customer(session, email="survivor@example.com")
    merge_customers(session, actor=factories.SYSTEM, survivor_id=survivor.id, merged_id=w["yes"], reason="test")
    session.commit()
    owners = set(session.scalars(select(ThirdPartyProvision.customer_id)))
    assert owners == {survivor.id, w["phone_only"]}


def test_cli_writes_the_file_and_records_provisions(db, session, tmp_path):
    w = world(session)
    out = tmp_path / "aud.csv"
    r = kizuna_cli(
        db,
        tmp_path / "home",
        "export",
        "audience",
        "--segment",
        "広告オーディエンス",
        "--platform",
        "meta",
        "-o",
        str(out),
    )
    assert r.returncode == 0, r.stderr + r.stdout
    assert "wrote 2 customers" in r.stdout and "3 without advertising consent" in r.stdout
    assert out.read_text().splitlines()[0] == "EMAIL,PHONE,FN,LN,CT,ST,ZIP,COUNTRY"
    session.expire_all()
    assert len(list(session.scalars(select(ThirdPartyProvision)))) == 2
    bad = kizuna_cli(
        db,
        tmp_path / "home",
        "export",
        "audience",
        "--segment",
        str(w["segment_id"]),
        "--platform",
        "x",
        "-o",
        str(tmp_path / "x.csv"),
    )
    assert bad.returncode == 2 and "unknown ad platform" in bad.stdout
    assert not (tmp_path / "x.csv").exists()


def test_api_returns_the_file_and_counts(client, session):
    w = world(session)
    r = client.get(f"/api/v1/segments/{w['segment_id']}/audience", params={"platform": "google"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert f"audience-{w['segment_id']}-google.csv" in r.headers["content-disposition"]
    assert r.headers["x-kizuna-rows"] == "2" and r.headers["x-kizuna-without-consent"] == "3"
    assert r.text.splitlines()[0] == "Email,Phone,First Name,Last Name,Country,Zip"
    assert client.get(f"/api/v1/segments/{w['segment_id']}/audience", params={"platform": "x"}).status_code == 422
    assert client.get("/api/v1/segments/999/audience", params={"platform": "meta"}).status_code == 404


def test_api_refuses_roles_without_export(client_as, session):
    w = world(session)
    r = client_as("viewer").get(f"/api/v1/segments/{w['segment_id']}/audience", params={"platform": "meta"})
    assert r.status_code == 403


def test_anonymous_profiles_still_in_a_segment_are_left_out(session):
    w = world(session)
    # A profile that became anonymous (or anything not active) after the segment was built.
    session.execute(update(Customer).where(Customer.id == w["yes"]).values(status="anonymous"))
    session.commit()
    rows, result = export(session, w["segment_id"], "meta")
    assert [r["PHONE"] for r in rows] == [sha("818011112222")]
    assert result.members == 4
