"""Import from the browser, over HTTP: upload, mapping, preview errors, run, counts, reject report; and the API."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from kizuna.config import get_settings
from kizuna.customers.models import Customer
from kizuna.db import transaction
from kizuna.imports.models import ImportJob
from kizuna.outbox import worker
from tests.web.conftest import csrf_of

CP932_FILE = (
    "会員番号,氏名,メールアドレス,電話番号,メモ\r\n"
    "M001,髙橋 一郎,ichiro@example.jp,090-1234-5678,①優良\r\n"
    "M002,山田 花子,broken-address,,\r\n"
    'M003,佐藤 三郎,saburo@example.jp,03-1111-2222,"=HYPERLINK(""http://x"")"\r\n'
    "M004,鈴木 四郎,shiro@example.jp,,,余分,列\r\n"
).encode("cp932")


def _upload(c, data: bytes, *, kind: str = "customers", name: str = "会員一覧.csv"):  # noqa: ANN001, ANN202
    token = csrf_of(c.get("/imports").text)
    return c.post(
        "/imports",
        data={"csrf_token": token, "kind": kind},
        files={"file": (name, data, "text/csv")},
        follow_redirects=False,
    )


def _job_id(response) -> int:  # noqa: ANN001
    assert response.status_code == 303, response.text
    return int(re.search(r"/imports/(\d+)$", response.headers["location"]).group(1))


def _choices(html: str) -> dict[str, str]:
    """header -> selected option of the mapping table."""
    found = {}
    for select_html in re.findall(r'<select id="map-\d+".*?</select>', html, re.S):
        header = re.search(r'data-header="([^"]*)"', select_html).group(1)
        chosen = re.search(r'<option value="([^"]*)" selected', select_html)
        found[header] = chosen.group(1) if chosen else ""
    return found


def test_upload_map_preview_run_and_download_rejects_in_japanese(ui_client, db: Engine) -> None:
    c = ui_client("marketer")
    c.cookies.set("kizuna_lang", "ja")
    assert 'href="/imports"' in c.get("/customers").text
    job_id = _job_id(_upload(c, CP932_FILE))
    page = c.get(f"/imports/{job_id}")
    assert page.status_code == 200
    html = page.text
    assert "Shift_JIS(CP932)" in html
    assert _choices(html) == {
        "会員番号": "external_id",
        "氏名": "full_name",
        "メールアドレス": "email",
        "電話番号": "phone",
        "メモ": "-",
    }
    # The preview: line 3 would be rejected for its e-mail, line 5 for its extra cells; nothing stored yet.
    assert 'data-testid="preview-row-3"' in html and "import-rejected" in html
    # Each reason in Japanese, read from its key when shown, with the code beside it for scripts and tests.
    row3 = html.split('data-testid="preview-row-3"')[1].split("</tr>")[0]
    assert "取り込めません" in row3 and 'data-code="email_invalid"' in row3
    assert "メールアドレス: 「broken-address」はメールアドレスとして正しくありません。" in row3
    row5 = html.split('data-testid="preview-row-5"')[1].split("</tr>")[0]
    assert "取り込めません" in row5 and "この行にはセルが 7 個ありますが、見出しは 5 列です。" in row5
    assert "is not a valid" not in html and "cells but the header" not in html
    assert "+819012345678" in html  # the phone as it would be stored
    with transaction(db) as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 0

    # Keep the memo column in attributes and run.
    token = csrf_of(html)
    form = {"csrf_token": token, "encoding": "cp932", "action": "preview"}
    form.update({f"map-{i}": v for i, v in enumerate(["external_id", "full_name", "email", "phone", "+attributes"])})
    assert c.post(f"/imports/{job_id}/mapping", data=form, follow_redirects=False).status_code == 303
    html = c.get(f"/imports/{job_id}").text
    assert _choices(html)["メモ"] == "+attributes"
    assert "①優良" in html
    form["action"] = "run"
    assert c.post(f"/imports/{job_id}/mapping", data=form, follow_redirects=False).status_code == 303

    page = c.get(f"/imports/{job_id}").text
    assert 'data-testid="progress-bar"' in page and 'value="100"' in page
    assert re.search(r'data-testid="count-inserted">2<', page)
    assert re.search(r'data-testid="count-rejected">2<', page)
    assert "完了" in page
    # The finished job lists its rejects in the viewer's language.
    listed = page.split('data-testid="import-rejects"')[1].split("</table>")[0]
    assert re.search(r'data-testid="reject-3" data-code="email_invalid">.*?メールアドレス<', listed, re.S)
    assert "「broken-address」はメールアドレスとして正しくありません。" in listed and "取り込んでいません" in listed
    assert "この行にはセルが 7 個ありますが、見出しは 5 列です。" in listed and "is not a valid" not in listed
    progress = c.get(f"/imports/{job_id}/progress").json()
    assert (progress["status"], progress["percent"], progress["inserted"]) == ("done", 100, 2)

    report = c.get(f"/imports/{job_id}/rejects.csv")
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/csv")
    assert "filename*=UTF-8''" in report.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    # The reasons in the viewer's language with their codes, then each row as the file had it.
    assert rows[0] == [
        "line",
        "field",
        "reason",
        "reason_code",
        "severity",
        "会員番号",
        "氏名",
        "メールアドレス",
        "電話番号",
        "メモ",
    ]
    assert rows[1] == [
        "3", "メールアドレス", "「broken-address」はメールアドレスとして正しくありません。", "email_invalid", "error",
        "M002", "山田 花子", "broken-address", "", "",
    ]  # fmt: skip
    assert rows[2] == [
        "5", "行全体", "この行にはセルが 7 個ありますが、見出しは 5 列です。", "import_too_many_cells", "error",
        "M004", "鈴木 四郎", "shiro@example.jp", "", "", "余分", "列",
    ]  # fmt: skip
    with transaction(db) as s:
        stored = s.scalar(select(Customer).where(Customer.external_id == "M003"))
        assert stored.attributes == {"メモ": '=HYPERLINK("http://x")'}


def test_an_english_viewer_reads_the_reasons_in_english_and_the_corrected_report_imports(ui_client, db: Engine) -> None:
    c = ui_client("marketer")
    c.cookies.set("kizuna_lang", "en")
    job_id = _job_id(_upload(c, CP932_FILE))
    html = c.get(f"/imports/{job_id}").text
    row3 = html.split('data-testid="preview-row-3"')[1].split("</tr>")[0]
    assert "E-mail: &#39;broken-address&#39; is not a valid e-mail address." in row3
    token = csrf_of(html)
    c.post(f"/imports/{job_id}/mapping", data={"csrf_token": token, "encoding": "cp932", "action": "run"})
    page = c.get(f"/imports/{job_id}").text
    listed = page.split('data-testid="import-rejects"')[1].split("</table>")[0]
    assert "is not a valid e-mail address." in listed and "Not imported" in listed and "メール" not in listed
    rows = list(csv.reader(io.StringIO(c.get(f"/imports/{job_id}/rejects.csv").content.decode("utf-8-sig"))))
    assert rows[1][:5] == ["3", "E-mail", "'broken-address' is not a valid e-mail address.", "email_invalid", "error"]
    assert rows[2][3] == "import_too_many_cells" and rows[2][2] == "The row has 7 cells but the header has 5."

    # Correct the rows in the downloaded report and import it as it is: the report's own columns are ignored.
    rows[1][7] = "hanako@example.jp"
    rows[2] = rows[2][:10]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    again = _job_id(_upload(c, out.getvalue().encode("utf-8-sig"), name="会員一覧-rejects.csv"))
    html = c.get(f"/imports/{again}").text
    assert {h: m for h, m in _choices(html).items() if h in ("line", "field", "reason", "reason_code", "severity")} == {
        "line": "-", "field": "-", "reason": "-", "reason_code": "-", "severity": "-",
    }  # fmt: skip
    c.post(f"/imports/{again}/mapping", data={"csrf_token": csrf_of(html), "action": "run"})
    assert re.search(r'data-testid="count-inserted">2<', c.get(f"/imports/{again}").text)
    with transaction(db) as s:
        hanako = s.scalar(select(Customer).where(Customer.external_id == "M002"))
        assert (hanako.email, hanako.attributes) == ("hanako@example.jp", {})


def test_a_formula_in_a_rejected_value_is_neutralised_in_the_download(ui_client) -> None:
    c = ui_client("admin")
    job_id = _job_id(_upload(c, b'email\n"=1+2"\n', name="x.csv"))
    token = csrf_of(c.get(f"/imports/{job_id}").text)
    c.post(f"/imports/{job_id}/mapping", data={"csrf_token": token, "action": "run", "map-0": "email"})
    text = c.get(f"/imports/{job_id}/rejects.csv").content.decode("utf-8-sig")
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)


def test_upload_errors_are_shown_next_to_the_field_in_japanese(ui_client, monkeypatch: pytest.MonkeyPatch) -> None:
    c = ui_client("manager")
    c.cookies.set("kizuna_lang", "ja")
    empty = _upload(c, b"")
    assert empty.status_code == 422
    assert 'data-testid="error-file"' in empty.text and "ファイルが空です" in empty.text
    monkeypatch.setattr(get_settings(), "import_upload_max_bytes", 10)
    big = _upload(c, CP932_FILE)
    assert big.status_code == 422 and "ファイルが大きすぎます" in big.text


def test_a_missing_required_column_blocks_the_run_with_the_reason(ui_client, db: Engine) -> None:
    c = ui_client("admin")
    c.cookies.set("kizuna_lang", "ja")
    job_id = _job_id(_upload(c, CP932_FILE))
    token = csrf_of(c.get(f"/imports/{job_id}").text)
    form = {"csrf_token": token, "action": "run", "map-0": "-", "map-2": "-", "map-3": "-"}
    refused = c.post(f"/imports/{job_id}/mapping", data=form, follow_redirects=False)
    assert refused.status_code == 422
    assert "この対応付けでは取り込めません" in refused.text
    assert 'data-testid="preview-problem"' in refused.text
    # Why, in Japanese too: the missing field by the header a Japanese file would use for it.
    assert "必須の列がありません" in refused.text and "missing required column" not in refused.text
    with transaction(db) as s:
        assert s.get(ImportJob, job_id).status != "queued"


def test_a_viewer_sees_no_import_menu_and_may_not_open_the_page(ui_client) -> None:
    c = ui_client("viewer")
    assert 'href="/imports"' not in c.get("/customers").text
    assert c.get("/imports").status_code == 403


def test_a_big_upload_is_followed_until_the_worker_finishes(
    ui_client, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "import_inline_rows", 2)
    c = ui_client("admin")
    job_id = _job_id(_upload(c, CP932_FILE))
    token = csrf_of(c.get(f"/imports/{job_id}").text)
    c.post(f"/imports/{job_id}/mapping", data={"csrf_token": token, "action": "run"})
    page = c.get(f"/imports/{job_id}").text
    assert f'data-follow="/imports/{job_id}/progress"' in page
    assert c.get(f"/imports/{job_id}/progress").json()["status"] == "queued"
    assert worker.run_once(db).done == 1
    done = c.get(f"/imports/{job_id}/progress").json()
    assert (done["status"], done["percent"], done["inserted"], done["rejected"]) == ("done", 100, 2, 2)


def test_the_api_uploads_previews_runs_and_serves_rejects(client, db: Engine) -> None:
    made = client.post("/api/v1/imports", data={"kind": "customers"}, files={"file": ("会員.csv", CP932_FILE)})
    assert made.status_code == 201, made.text
    job = made.json()
    assert (job["encoding"], job["status"], job["mapping"]["メモ"]) == ("cp932", "uploaded", "-")
    shown = client.post(f"/api/v1/imports/{job['id']}/preview", json={"mapping": {"メモ": "+attributes"}})
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["problem"] is None
    assert [r["line"] for r in body["rows"] if r["errors"]] == [3, 5]
    ran = client.post(f"/api/v1/imports/{job['id']}/run")
    assert ran.status_code == 202, ran.text
    assert (ran.json()["status"], ran.json()["inserted"], ran.json()["rejected"]) == ("done", 2, 2)
    assert client.get(f"/api/v1/imports/{job['id']}").json()["percent"] == 100
    assert [j["id"] for j in client.get("/api/v1/imports").json()] == [job["id"]]
    rejects = client.get(f"/api/v1/imports/{job['id']}/rejects")
    assert rejects.status_code == 200
    # The API's report is in English, with the same codes and the rows' own cells.
    api_rows = list(csv.reader(io.StringIO(rejects.content.decode("utf-8-sig"))))
    assert api_rows[0][:6] == ["line", "field", "reason", "reason_code", "severity", "会員番号"]
    assert api_rows[1][:2] == ["3", "email"] and api_rows[1][3:6] == ["email_invalid", "error", "M002"]
    assert "not a valid" in api_rows[1][2] or "invalid email" in api_rows[1][2]
    again = client.post(f"/api/v1/imports/{job['id']}/run")
    assert again.status_code == 409


def test_the_api_refuses_an_unknown_kind_and_a_viewer(client, client_as) -> None:
    bad = client.post("/api/v1/imports", data={"kind": "nope"}, files={"file": ("a.csv", b"email\na@example.jp\n")})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "kind"
    viewer = client_as("viewer")
    denied = viewer.post("/api/v1/imports", data={"kind": "customers"}, files={"file": ("a.csv", b"email\n")})
    assert denied.status_code == 403


def test_every_import_label_is_translated() -> None:
    """The labels the import pages build from a prefix and a name exist in both languages."""
    from kizuna.imports import jobs
    from kizuna.imports.models import JOB_STATUSES
    from kizuna.imports.report import ImportReport
    from kizuna.imports.runner import KINDS
    from kizuna.web.i18n import catalog

    names = [f"imports.kind.{k}" for k in KINDS]
    names += [f"imports.status.{s}" for s in (*JOB_STATUSES, "stalled")]
    names += [f"imports.field.{f}" for k in KINDS for f in jobs.field_choices(k)]
    names += [f"imports.encoding.{e}" for e in jobs.ENCODINGS]
    names += [f"imports.count.{c}" for c in ImportReport(kind="customers", file="f").counts()]
    names += ["imports.count.warnings"]
    names += [f"imports.to_attributes.{k}" for k in KINDS if jobs.keeps_attributes(k)]
    for lang in ("ja", "en"):
        assert sorted(set(names) - set(catalog(lang))) == [], lang


def test_an_encoding_the_file_does_not_read_in_is_refused_next_to_the_field(ui_client, db: Engine) -> None:
    c = ui_client("admin")
    c.cookies.set("kizuna_lang", "ja")
    job_id = _job_id(_upload(c, CP932_FILE))
    token = csrf_of(c.get(f"/imports/{job_id}").text)
    refused = c.post(f"/imports/{job_id}/mapping", data={"csrf_token": token, "encoding": "utf-8", "action": "preview"})
    assert refused.status_code == 422
    assert 'data-testid="error-encoding"' in refused.text
    assert "この文字コードではファイルを読めません" in refused.text
    with transaction(db) as s:
        assert s.get(ImportJob, job_id).encoding == "cp932"
    assert "自動判定: Shift_JIS(CP932)" in c.get(f"/imports/{job_id}").text


def test_an_upload_may_exceed_the_json_body_limit_but_not_the_upload_limit(db: Engine, monkeypatch) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from kizuna.app import create_app
    from tests.conftest import make_token

    monkeypatch.setattr(get_settings(), "import_upload_max_bytes", 8_000_000)
    app = create_app(db)
    token = make_token(db, "uploader@example.com", "manager")
    data = b"email\n" + b"someone@example.jp\n" * 350_000  # 6.7 MB: over the 5 MB JSON limit
    assert len(data) > get_settings().max_body_bytes
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        made = c.post("/api/v1/imports", data={"kind": "customers"}, files={"file": ("big.csv", data)})
        assert made.status_code == 201, made.text
        assert made.json()["size_bytes"] == len(data)
        too_big = c.post("/api/v1/imports", data={"kind": "customers"}, files={"file": ("big.csv", data * 2)})
        assert too_big.status_code == 413
        assert c.post("/api/v1/customers", content=b"{" + b" " * 6_000_000 + b"}").status_code == 413


def test_every_import_reason_key_is_in_both_catalogs() -> None:
    """Each key an import reason names (in the importers and the validators they call) has a text in both
    languages, so no reason reaches the Japanese UI as English."""
    from pathlib import Path

    from kizuna.web.i18n import catalog

    root = Path(__file__).resolve().parents[2] / "kizuna"
    sources = [
        *root.glob("imports/*.py"),
        *root.glob("*/importer.py"),
        *root.glob("customers/importer/*.py"),
        root / "customers/references.py",
        root / "customers/identities.py",
        root / "orders/schemas.py",
        root / "events/schemas.py",
        root / "catalog/schemas.py",
        root / "schemas.py",
    ]
    keys = set()
    for path in sources:
        text = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r'"(error\.[a-z_]+)"', text))
        keys |= {f"error.{kind}" for kind in re.findall(r'PydanticCustomError\(\s*"([a-z_]+)"', text)}
    assert "error.import_no_such_customer" in keys and "error.order_needs_lines" in keys
    for lang in ("en", "ja"):
        assert sorted(keys - set(catalog(lang))) == [], lang
