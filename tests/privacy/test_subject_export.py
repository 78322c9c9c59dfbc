"""Data-subject access export: everything about one person, nothing about anyone else, no secrets, audited."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from sqlalchemy import select

import kizuna.models  # noqa: F401  (every table on the metadata)
from kizuna.auth.models import AuditEntry
from kizuna.db import Base
from kizuna.errors import NotFound, PermissionDenied
from kizuna.privacy import subject_export as export
from tests import factories
from tests.cli import kizuna as run_kizuna
from tests.web.conftest import csrf_of

_LOOKS_SECRET = re.compile(r"secret|password|token|nonce|hash|key")


def _names_a_customer(table) -> bool:  # noqa: ANN001
    return "customer_id" in table.c or any(fk.column.table.name == "customers" for fk in table.foreign_keys)


def test_every_table_that_reaches_a_customer_is_exported_or_excluded_with_a_reason():
    """Computed here independently of the export's own walk: a table naming a customer, or pointing (through
    any chain of foreign keys) at a row of such a table, must be exported or in EXCLUDED_TABLES with a reason."""
    reached = {t.name for t in Base.metadata.sorted_tables if _names_a_customer(t) or t.name == "customers"}
    while True:
        more = {
            t.name
            for t in Base.metadata.sorted_tables
            if t.name not in reached and any(fk.column.table.name in reached for fk in t.foreign_keys)
        }
        if not more:
            break
        reached |= more
    exported = set(export.plan())
    excluded = set(export.EXCLUDED_TABLES)
    assert exported | excluded == reached, "a table reaching a customer is neither exported nor excluded"
    assert not exported & excluded
    assert all(reason.strip() for reason in export.EXCLUDED_TABLES.values()), "each exclusion says why"
    # The child tables are reached through their parent, not by a customer_id of their own.
    assert {"chat_messages", "journey_steps", "deal_stage_changes"} <= exported
    assert export.plan()["chat_messages"].how == "through chat_id -> chat_sessions"


def test_no_column_that_looks_like_a_secret_is_exported_unless_declared_harmless():
    parts = export.plan()
    tables = [p.table for p in parts.values()]
    tables += [Base.metadata.tables[n] for n in [*export.context_plan(parts), *export.EXTRA_CONTEXT]]
    for table in tables:
        harmless = export.NOT_SECRET.get(table.name, {})
        for column in export.exported_columns(table):
            if _LOOKS_SECRET.search(column.name):
                assert harmless.get(column.name), f"{table.name}.{column.name} looks like a secret: leave it out"
    assert all(export.CONTEXT_EXCLUDED.values())
    assert "users" in export.CONTEXT_EXCLUDED


def _export(session, customer_id: int, actor=factories.SYSTEM) -> tuple[export.SubjectExport, dict]:  # noqa: ANN001
    out = io.BytesIO()
    result = export.write_subject_export(session, actor=actor, customer_id=customer_id, out=out)
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as zf:
        assert zf.testzip() is None
        files = {name: zf.read(name) for name in zf.namelist()}
    return result, files


def test_the_export_holds_a_row_of_every_table_and_nothing_of_anyone_else(session, subject):
    survivor, merged = subject["id"], subject["merged"]
    result, files = _export(session, survivor)
    manifest = json.loads(files["manifest.json"])
    assert manifest["customer_id"] == survivor and manifest["merged_customer_ids"] == [merged]
    ids = {survivor, merged}
    parts = export.plan()
    rows = {}
    for entry in manifest["tables"]:
        data = json.loads(files[entry["file"]].decode("utf-8"))
        assert len(data) == entry["rows"] == result.tables[entry["name"]]
        rows[entry["name"]] = data
    empty = sorted(name for name in parts if not rows[name])
    assert not empty, f"no row exported from {empty}: give the subject fixture (tests/privacy/conftest.py) one"
    # Every row names the subject (or hangs off a row that does).
    for name, part in parts.items():
        columns = [c.name for c in export.subject_columns(part.table)]
        for row in rows[name]:
            if columns:
                assert {row[c] for c in columns} & ids, (name, row)
    assert {r["id"] for r in rows["customers"]} == ids
    chats = {r["id"] for r in rows["chat_sessions"]}
    assert all(m["chat_id"] in chats for m in rows["chat_messages"])
    assert {r["segment_id"] for r in rows["segment_memberships"]} == {r["id"] for r in rows_of(files, "segments")}
    # Nothing of the stranger anywhere: no id in a customer column, no text in any file.
    everything = b"".join(files.values()).decode("utf-8")
    for text in ("stranger@example.org", "他人", "秘密子", "ORD-STRANGER", "stranger_visit"):
        assert text not in everything, text
    # Secrets never leave; what the person wrote is there, as written (UTF-8, not \\u escapes).
    data = b"".join(v for k, v in files.items() if k.endswith(".json") and k != "manifest.json").decode("utf-8")
    assert "nonce-本人" not in data and '"secret_hash"' not in data and '"nonce"' not in data and "0" * 64 not in data
    assert "本人です、質問があります".encode() in files["chat_messages.json"]
    assert "まだ届きません".encode() in files["inquiry_messages.json"]
    # Money as an exact string, times as ISO 8601 in UTC.
    order = rows["orders"][0]
    assert order["total_amount"] == "4800.00" and order["ordered_at"] == "2024-02-10T00:00:00+00:00"
    assert rows["order_lines"][0]["unit_price"] == "2400.00"
    # Context: what the ids mean, and the custom field behind attributes.favorite_tea.
    assert [t["name"] for t in rows_of(files, "tags")] == ["本人タグ"]
    assert [p["sku"] for p in rows_of(files, "products")] == ["TEA-01"]
    assert [f["key"] for f in rows_of(files, "custom_fields")] == ["favorite_tea"]
    assert rows["customers"][0]["attributes"] == {"favorite_tea": "本人の煎茶"}
    assert "README.txt" in files and str(survivor) in files["README.txt"].decode("utf-8")
    assert manifest["left_out"]["columns"]["line_links"] == ["nonce"]


def rows_of(files: dict, context: str) -> list[dict]:
    return json.loads(files[f"context/{context}.json"])


def test_a_merged_id_exports_its_survivor_and_the_export_is_audited(session, subject):
    result, files = _export(session, subject["merged"])
    assert result.customer_id == subject["id"] and result.merged_ids == [subject["merged"]]
    session.commit()
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "privacy.subject_export"))
    assert entry.customer_id == subject["id"] and entry.entity_id == str(subject["id"])
    assert entry.details["requested_id"] == subject["merged"] and entry.details["rows"] == sum(result.tables.values())
    assert entry.details["tables"]["events"] == result.tables["events"]


def test_only_admins_may_export_and_an_unknown_id_is_not_found(session, subject):
    for role in ("viewer", "support", "sales", "marketer", "manager"):
        user = factories.user(session, email=f"{role}@example.com", role=role)
        from kizuna.auth import service as auth

        with pytest.raises(PermissionDenied):
            export.write_subject_export(
                session, actor=auth.actor_for(user), customer_id=subject["id"], out=io.BytesIO()
            )
    with pytest.raises(NotFound):
        export.write_subject_export(session, actor=factories.SYSTEM, customer_id=999_999, out=io.BytesIO())


def test_api_downloads_the_zip_for_admins_and_refuses_viewers(client, client_as, session, subject):
    r = client.get(f"/api/v1/customers/{subject['merged']}/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert f'filename="customer-{subject["id"]}-data-' in r.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert json.loads(zf.read("manifest.json"))["customer_id"] == subject["id"]
    session.expire_all()
    audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "privacy.subject_export")).all()
    assert [(a.actor, a.customer_id) for a in audited] == [("api-admin@example.com", subject["id"])]
    assert client_as("viewer").get(f"/api/v1/customers/{subject['id']}/export").status_code == 403
    assert client_as("manager").get(f"/api/v1/customers/{subject['id']}/export").status_code == 403
    assert client.get("/api/v1/customers/999999/export").status_code == 404


def test_the_360_page_button_posts_with_csrf_and_downloads(ui_client, session, subject):
    admin = ui_client("admin")
    html = admin.get(f"/customers/{subject['id']}").text
    assert 'data-testid="subject-export"' in html and "個人データを書き出す" in html
    token = csrf_of(html)
    # Without the form's token (another site's form or link): refused, nothing written.
    assert admin.post(f"/customers/{subject['id']}/export").status_code == 403
    r = admin.post(f"/customers/{subject['merged']}/export", data={"csrf_token": token})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert json.loads(zf.read("manifest.json"))["customer_id"] == subject["id"]
    session.expire_all()
    audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "privacy.subject_export")).all()
    assert len(audited) == 1 and audited[0].actor == "admin-0@example.com"
    viewer = ui_client("viewer")
    page = viewer.get(f"/customers/{subject['id']}").text
    assert 'data-testid="subject-export"' not in page
    assert viewer.post(f"/customers/{subject['id']}/export", data={"csrf_token": csrf_of(page)}).status_code == 403


def test_cli_writes_a_valid_zip_and_leaves_nothing_on_failure(db, subject, tmp_path):
    out = tmp_path / "subject.zip"
    r = run_kizuna("privacy", "export-subject", str(subject["merged"]), "-o", str(out), engine=db)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"about customer {subject['id']} (with merged {subject['merged']})" in r.stdout
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["customer_id"] == subject["id"]
        events = json.loads(zf.read("events.json"))
        assert len(events) == next(t["rows"] for t in manifest["tables"] if t["name"] == "events") > 0
    missing = tmp_path / "missing.zip"
    r = run_kizuna("privacy", "export-subject", "999999", "-o", str(missing), engine=db)
    assert r.returncode != 0 and "customer 999999 not found" in r.stdout
    assert not missing.exists() and [p.name for p in tmp_path.iterdir()] == ["subject.zip"]
