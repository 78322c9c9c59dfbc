"""A vCard file imported from the browser: the import page accepts .vcf and runs it as customers."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine

from kizuna.customers.models import Customer
from kizuna.db import transaction
from tests.imports.test_vcard_import import IPHONE
from tests.web.conftest import csrf_of
from tests.web.test_imports_ui import _choices, _job_id, _upload


def test_a_vcf_uploads_maps_company_to_attributes_and_runs(ui_client, db: Engine) -> None:
    c = ui_client("admin")
    c.cookies.set("kizuna_lang", "ja")
    assert ".vcf" in c.get("/imports").text
    job_id = _job_id(_upload(c, IPHONE.encode(), kind="vcard", name="iPhone連絡先.vcf"))
    page = c.get(f"/imports/{job_id}").text
    shown = _choices(page)
    assert shown["email"] == "email" and shown["company"] == "+attributes"
    c.post(f"/imports/{job_id}/mapping", data={"csrf_token": csrf_of(page), "action": "run"})
    with transaction(db) as s:
        taro = s.scalar(select(Customer).where(Customer.email == "taro.yamada@example.jp"))
        assert taro.family_name_kana == "ヤマダ" and taro.attributes["company"] == "株式会社きずな"


def test_a_broken_vcf_is_refused_at_upload_naming_card_and_line(ui_client, db: Engine) -> None:
    c = ui_client("admin")
    c.cookies.set("kizuna_lang", "ja")
    refused = _upload(c, IPHONE.encode().replace("太郎".encode(), b"\xe5\xa4", 1), kind="vcard", name="x.vcf")
    assert refused.status_code == 422
    assert "vCard ファイルを取り込めません" in refused.text and "card 1, line 4" in refused.text
    with transaction(db) as s:
        assert s.scalar(select(Customer.id)) is None
