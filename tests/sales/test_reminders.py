"""Task reminders through the real worker (``outbox.worker.run_once``) on both backends: a due reminder marks the
task reminded, is announced once as ``task.reminder`` and shows on the owner's home page; a future one waits; a
moved one is sent once, at its new time; a task done before its reminder gets none."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from kizuna.auth.models import User
from kizuna.db import transaction, utcnow
from kizuna.outbox.models import OutboxDelivery, OutboxMessage
from kizuna.outbox.worker import run_once
from kizuna.sales import activities, reminders
from kizuna.sales.models import Task
from kizuna.sales.schemas import TaskCreate, TaskUpdate
from tests import factories


def _task(db, email: str, title: str, remind_in: dt.timedelta) -> int:  # noqa: ANN001
    with transaction(db) as s:
        owner = s.scalar(select(User.id).where(User.email == email))
        customer = factories.customer(s)
        now = utcnow()
        task = activities.create_task(
            s,
            actor=factories.SYSTEM,
            data=TaskCreate(
                title=title, customer_id=customer.id, owner_id=owner, remind_at=now + remind_in,
                due_at=now + remind_in + dt.timedelta(hours=1),
            ),
        )  # fmt: skip
        s.flush()
        return task.id


def _announced(db) -> list[dict]:  # noqa: ANN001
    with transaction(db) as s:
        query = (
            select(OutboxMessage.payload).where(OutboxMessage.topic == reminders.ANNOUNCED).order_by(OutboxMessage.id)
        )
        return list(s.scalars(query))


def _time_passes(db) -> None:  # noqa: ANN001
    """Every scheduled delivery becomes due (the clock moved on)."""
    with transaction(db) as s:
        s.execute(
            update(OutboxDelivery)
            .where(OutboxDelivery.status == "pending")
            .values(available_at=utcnow() - dt.timedelta(seconds=1))
        )


def test_a_due_reminder_is_sent_once_and_shown_on_the_owners_home_page(db, ui_client):
    ui = ui_client("sales")  # sales-0@example.com
    due = _task(db, "sales-0@example.com", "見積書を送る", -dt.timedelta(minutes=1))
    later = _task(db, "sales-0@example.com", "来週の訪問準備", dt.timedelta(days=2))
    assert 'data-testid="my-reminders"' not in ui.get("/home").text
    run_once(db, worker="w")
    run_once(db, worker="w")
    announced = _announced(db)
    assert [(p["task_id"], p["title"]) for p in announced] == [(due, "見積書を送る")]
    with transaction(db) as s:
        assert s.get(Task, due).reminded_at is not None and s.get(Task, later).reminded_at is None
    page = ui.get("/home").text
    notice = page[page.index('data-testid="my-reminders"') :]
    assert "見積書を送る" in notice and "来週の訪問準備" not in notice
    ui.cookies.set("kizuna_lang", "en")
    assert "Reminders" in ui.get("/home").text
    # The API shows when it went out.
    with transaction(db) as s:
        assert activities.get_task(s, due).reminded_at is not None


def test_a_moved_reminder_is_sent_once_at_its_new_time_and_a_done_task_gets_none(db, make_user):
    make_user("sales", "rep@example.com")
    moved = _task(db, "rep@example.com", "電話する", dt.timedelta(hours=3))
    done = _task(db, "rep@example.com", "資料送付", dt.timedelta(hours=3))
    run_once(db, worker="w")
    assert _announced(db) == []  # not yet due
    with transaction(db) as s:
        activities.update_task(
            s, actor=factories.SYSTEM, task_id=moved, data=TaskUpdate(remind_at=utcnow() - dt.timedelta(seconds=5)),
            expected_version=None,
        )  # fmt: skip
        activities.update_task(
            s, actor=factories.SYSTEM, task_id=done, data=TaskUpdate(status="done"), expected_version=None
        )
    run_once(db, worker="w")
    assert [p["task_id"] for p in _announced(db)] == [moved]
    _time_passes(db)  # the first time of the moved reminder, and the done task's, arrive
    run_once(db, worker="w")
    assert [p["task_id"] for p in _announced(db)] == [moved]
    with transaction(db) as s:
        assert s.get(Task, done).reminded_at is None
        assert reminders.reminders(s, user_id=s.scalar(select(User.id).where(User.email == "rep@example.com"))) == [
            s.get(Task, moved)
        ]
