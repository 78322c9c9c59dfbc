"""Import jobs: upload, mapping, preview, run in the request or in the worker, reject report."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from kizuna.auth.permissions import Actor
from kizuna.config import get_settings
from kizuna.customers.models import Customer
from kizuna.db import transaction, utcnow
from kizuna.errors import PermissionDenied, ValidationError
from kizuna.events.models import Event
from kizuna.imports import job_run, jobs, preview
from kizuna.imports.models import ImportJob
from kizuna.orders.models import Order
from kizuna.outbox import worker
from kizuna.outbox.models import OutboxDelivery
from tests import factories

CUSTOMERS_CP932 = (
    "会員番号,氏名,メールアドレス,電話番号,誕生日,メモ\r\n"
    "M001,山田 太郎,taro@example.jp,090-1234-5678,1980/4/1,髙橋さん紹介①\r\n"
    "M002,鈴木 花子,not-an-email,,1990/13/40,\r\n"
    "M003,佐藤 次郎,jiro@example.jp,03-1111-2222,,\r\n"
).encode("cp932")


@pytest.fixture
def user(db: Engine) -> Actor:
    from kizuna.auth import service as auth

    with transaction(db) as s:
        made = factories.user(s, email="marketer@example.com", role="marketer")
        return auth.actor_for(made).via("api")


def _upload(db: Engine, actor: Actor, data: bytes, *, kind: str = "customers", name: str = "会員.csv") -> int:
    with transaction(db) as s:
        return jobs.upload(s, actor=actor, kind=kind, file_name=name, stream=io.BytesIO(data)).id


def _job(db: Engine, job_id: int) -> ImportJob:
    with transaction(db) as s:
        job = s.get(ImportJob, job_id)
        s.expunge(job)
        return job


def test_upload_detects_cp932_and_proposes_the_cli_mapping(db: Engine, user: Actor) -> None:
    job = _job(db, _upload(db, user, CUSTOMERS_CP932))
    assert job.encoding == "cp932"
    assert job.status == "uploaded"
    assert job.rows_total == 3
    assert job.mapping == {
        "会員番号": "external_id",
        "氏名": "full_name",
        "メールアドレス": "email",
        "電話番号": "phone",
        "誕生日": "birth_date",
        "メモ": "-",
    }
    stored = jobs.file_path(job)
    assert stored.parent == get_settings().home / "imports"
    assert stored.read_bytes() == CUSTOMERS_CP932


def test_upload_refuses_a_file_over_the_limit_and_keeps_nothing(
    db: Engine, user: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "import_upload_max_bytes", 100)
    before = set(jobs.imports_dir().iterdir())
    with pytest.raises(ValidationError) as refused:
        _upload(db, user, CUSTOMERS_CP932 * 10)
    assert refused.value.field == "file"
    assert set(jobs.imports_dir().iterdir()) == before
    with transaction(db) as s:
        assert s.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_upload_keeps_only_the_base_name_of_the_file(db: Engine, user: Actor) -> None:
    job = _job(db, _upload(db, user, CUSTOMERS_CP932, name="../../etc/passwd"))
    assert job.file_name == "passwd"
    assert jobs.file_path(job).parent == jobs.imports_dir()


def test_a_viewer_may_not_upload(db: Engine) -> None:
    with pytest.raises(PermissionDenied):
        _upload(db, Actor(label="v", role="viewer"), CUSTOMERS_CP932)


def test_preview_shows_stored_values_and_the_errors_each_row_would_get(db: Engine, user: Actor) -> None:
    job_id = _upload(db, user, CUSTOMERS_CP932)
    with transaction(db) as s:
        jobs.update_mapping(s, actor=user, job_id=job_id, mapping={"メモ": "+attributes"})
    with transaction(db) as s:
        shown = preview.preview(s, actor=user, job_id=job_id)
    assert shown.problem is None
    first, second, third = shown.rows
    assert (first.line, first.errors) == (2, [])
    assert first.values["full_name"] == "山田 太郎"
    assert first.values["phone"] == "+819012345678"
    assert first.values["attributes"] == '{"メモ": "髙橋さん紹介①"}'
    assert second.line == 3 and [(e.field, e.key) for e in second.errors] == [("email", "error.email_invalid")]
    assert third.errors == []
    with transaction(db) as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 0


def test_preview_reports_a_missing_required_column_and_run_refuses(db: Engine, user: Actor) -> None:
    job_id = _upload(db, user, CUSTOMERS_CP932)
    with transaction(db) as s:
        job = jobs.update_mapping(
            s, actor=user, job_id=job_id, mapping={"会員番号": "-", "メールアドレス": "-", "電話番号": "-"}
        )
        assert job.status == "uploaded"
    with transaction(db) as s:
        assert "missing required column" in (preview.preview(s, actor=user, job_id=job_id).problem or "")
    with pytest.raises(ValidationError), transaction(db) as s:
        jobs.start(s, actor=user, job_id=job_id)


def test_a_small_job_runs_and_its_rejects_are_neutralised(db: Engine, user: Actor) -> None:
    data = "email,名前\r\n=cmd|' /C calc'!A0,山田\r\nok@example.jp,鈴木\r\n".encode()
    job_id = _upload(db, user, data)
    with transaction(db) as s:
        job = jobs.start(s, actor=user, job_id=job_id)
        assert jobs.runs_inline(job)
    assert job_run.execute(db, job_id) == "done"
    job = _job(db, job_id)
    assert (job.status, job.inserted, job.rejected, job.rows_done, job.rows_total) == ("done", 1, 1, 2, 2)
    with transaction(db) as s:
        report = b"".join(jobs.rejects_csv(s, actor=user, job_id=job_id)).decode("utf-8-sig")
    lines = report.splitlines()
    # The report's columns, then the row as the file had it (to be corrected and imported again).
    assert lines[0] == "line,field,reason,reason_code,severity,email,名前"
    rows = list(csv.reader(io.StringIO(report)))
    assert rows[1][:2] == ["2", "email"] and rows[1][3:] == ["email_invalid", "error", "'=cmd|' /C calc'!A0", "山田"]
    # Every cell that starts a formula is written with a leading apostrophe.
    assert all(not cell.startswith(("=", "+", "-", "@")) for line in lines for cell in line.split(","))


def test_running_the_same_file_again_changes_nothing(db: Engine, user: Actor) -> None:
    for _ in range(2):
        job_id = _upload(db, user, CUSTOMERS_CP932)
        with transaction(db) as s:
            jobs.start(s, actor=user, job_id=job_id)
        assert job_run.execute(db, job_id) == "done"
    job = _job(db, job_id)
    assert (job.inserted, job.updated, job.rejected) == (0, 0, 1)
    with transaction(db) as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 2


def test_a_big_job_is_run_by_the_worker(db: Engine, user: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "import_inline_rows", 1)
    job_id = _upload(db, user, CUSTOMERS_CP932)
    with transaction(db) as s:
        job = jobs.start(s, actor=user, job_id=job_id)
        assert not jobs.runs_inline(job)
    assert _job(db, job_id).status == "queued"
    tally = worker.run_once(db)
    assert (tally.done, tally.failed) == (1, 0), tally.errors
    job = _job(db, job_id)
    assert (job.status, job.inserted, job.rejected, job.runner) == ("done", 2, 1, None)
    with transaction(db) as s:
        assert s.scalar(select(OutboxDelivery.status).where(OutboxDelivery.subscriber == "import-jobs")) == "done"


def test_a_job_whose_worker_died_is_taken_over_and_finished(db: Engine, user: Actor) -> None:
    job_id = _upload(db, user, CUSTOMERS_CP932)
    with transaction(db) as s:
        jobs.start(s, actor=user, job_id=job_id)
    # As a worker killed mid-import leaves it: running, its heartbeat long stopped, the delivery's lease run out.
    long_ago = utcnow() - jobs.stale_after() * 2
    with transaction(db) as s:
        s.execute(update(ImportJob).values(status="running", runner="dead-worker", heartbeat_at=long_ago, rows_done=1))
        s.execute(update(OutboxDelivery).values(locked_by="dead-worker", locked_until=long_ago, attempts=1))
    assert _job(db, job_id).status == "running"
    tally = worker.run_once(db)
    assert tally.done == 1, tally.errors
    job = _job(db, job_id)
    assert (job.status, job.inserted, job.rejected) == ("done", 2, 1)


def test_a_job_run_by_a_live_process_is_left_to_it(db: Engine, user: Actor) -> None:
    job_id = _upload(db, user, CUSTOMERS_CP932)
    with transaction(db) as s:
        jobs.start(s, actor=user, job_id=job_id)
        s.flush()
        s.execute(update(ImportJob).values(status="running", runner="web:other", heartbeat_at=utcnow()))
    tally = worker.run_once(db)
    assert tally.failed == 1 and "being run by another process" in tally.errors[0]
    with transaction(db) as s:
        assert s.scalar(select(Customer.id)) is None


def test_kizuna_worker_once_in_a_subprocess_finishes_a_queued_job(
    db: Engine, user: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "import_inline_rows", 0)
    job_id = _upload(db, user, CUSTOMERS_CP932)
    with transaction(db) as s:
        jobs.start(s, actor=user, job_id=job_id)
    env = {
        **os.environ,
        "KIZUNA_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "KIZUNA_HOME": str(get_settings().home),
    }
    done = subprocess.run(
        [sys.executable, "-m", "kizuna", "worker", "--once"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    job = _job(db, job_id)
    assert (job.status, job.inserted, job.rejected) == ("done", 2, 1)


ORDERS = (
    "注文番号,会員番号,注文日時,合計金額,商品コード,数量,単価\n"
    "A-1,M001,2024/5/1 10:00,1000,SKU-1,1,1000\n"
    "A-2,M999,2024/5/2 10:00,500,SKU-1,1,500\n"
).encode()
EVENTS = (
    "イベントID,会員番号,イベント,チャネル,日時,ページ\n"
    "E-1,M001,page_view,web,2024/5/1 10:00,/top\n"
    ",M001,page_view,web,2024/5/1 11:00,/cart\n"
).encode()


@pytest.mark.parametrize(("kind", "data", "table"), [("orders", ORDERS, Order), ("events", EVENTS, Event)])
def test_orders_and_events_jobs_are_idempotent(db: Engine, user: Actor, kind: str, data: bytes, table: type) -> None:
    with transaction(db) as s:
        factories.customer(s, external_id="M001", email="taro@example.jp")
        factories.product(s, sku="SKU-1", name="お茶")
    counts = []
    for _ in range(2):
        job_id = _upload(db, user, data, kind=kind, name=f"{kind}.csv")
        with transaction(db) as s:
            jobs.start(s, actor=user, job_id=job_id)
        assert job_run.execute(db, job_id) == "done"
        with transaction(db) as s:
            counts.append(s.scalar(select(func.count()).select_from(table)))
        job = _job(db, job_id)
    assert counts[0] == counts[1] == 2 - (1 if kind == "orders" else 0)
    assert (job.inserted, job.updated) == (0, 0)


def test_preview_of_orders_names_an_unknown_customer(db: Engine, user: Actor) -> None:
    with transaction(db) as s:
        factories.customer(s, external_id="M001", email="taro@example.jp")
        factories.product(s, sku="SKU-1", name="お茶")
    job_id = _upload(db, user, ORDERS, kind="orders", name="orders.csv")
    with transaction(db) as s:
        shown = preview.preview(s, actor=user, job_id=job_id)
    assert shown.rows[0].errors == []
    reject = shown.rows[1].errors[0]
    assert "M999" in reject.reason and (reject.key, reject.params) == (
        "error.import_no_such_customer",
        {"value": "M999"},
    )
    with transaction(db) as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0


def test_stored_files_stay_inside_the_imports_folder(db: Engine, user: Actor) -> None:
    job_id = _upload(db, user, CUSTOMERS_CP932)
    with transaction(db) as s:
        s.execute(update(ImportJob).values(stored_name="../../kizuna.db"))
    job = _job(db, job_id)
    assert jobs.file_path(job) == jobs.imports_dir() / "kizuna.db"
    assert Path(jobs.file_path(job)).parent == jobs.imports_dir()


def test_a_worker_killed_mid_import_leaves_a_job_the_next_worker_finishes(
    db: Engine, user: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    lease = 2
    monkeypatch.setattr(get_settings(), "outbox_lease_seconds", lease)
    monkeypatch.setattr(get_settings(), "import_inline_rows", 0)
    rows = 30_000
    data = ("email,氏名\n" + "".join(f"p{i}@example.jp,山田 {i}\n" for i in range(rows))).encode()
    job_id = _upload(db, user, data, name="big.csv")
    with transaction(db) as s:
        jobs.start(s, actor=user, job_id=job_id)
    env = {
        **os.environ,
        "KIZUNA_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "KIZUNA_HOME": str(get_settings().home),
        "KIZUNA_OUTBOX_LEASE_SECONDS": str(lease),
        "KIZUNA_IMPORT_BATCH_SIZE": "300",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "kizuna", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while _job(db, job_id).rows_done == 0:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the worker never reported progress"
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    killed = _job(db, job_id)
    with transaction(db) as s:
        committed = s.scalar(select(func.count()).select_from(Customer))
    assert killed.status == "running" and 0 < killed.rows_done < rows
    assert 0 < committed < rows
    # Until its heartbeat is stale, the job is the dead worker's; then it shows as stalled and is taken over.
    time.sleep(jobs.stale_after().total_seconds() + 0.5)
    assert jobs.is_stalled(_job(db, job_id))
    tally = worker.run_once(db)
    assert tally.done == 1, tally.errors
    job = _job(db, job_id)
    assert (job.status, job.rejected, job.rows_done) == ("done", 0, rows)
    assert job.inserted == rows - committed
    with transaction(db) as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == rows


def test_choosing_another_encoding_reads_the_header_again(db: Engine, user: Actor) -> None:
    data = "顧客ID,メールアドレス\r\nC1,a@example.jp\r\n".encode("euc_jp")
    job_id = _upload(db, user, data)
    with transaction(db) as s:
        job = jobs.update_mapping(s, actor=user, job_id=job_id, encoding="latin-1")
        assert job.encoding == "iso8859-1" and "メールアドレス" not in job.mapping
    with transaction(db) as s:
        job = jobs.update_mapping(s, actor=user, job_id=job_id, encoding="euc_jp", mapping={"whatever": "email"})
        assert job.mapping == {"顧客ID": "external_id", "メールアドレス": "email"}
        assert job.headers == ["顧客ID", "メールアドレス"] and job.status == "previewed"
