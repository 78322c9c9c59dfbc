"""Activities (calls, meetings, visits, e-mails) and tasks on a customer, a company or a deal.

An activity or task on a deal takes the deal's customer (and company) when none is given, so that it shows on
that customer's timeline. Each write checks the role rules (access.py), is audited and emits an outbox message.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.models import User
from kizuna.auth.permissions import Actor
from kizuna.customers.models import Company
from kizuna.customers.service import resolve_id
from kizuna.db import check_version, utcnow
from kizuna.errors import NotFound, ValidationError
from kizuna.outbox.service import emit
from kizuna.sales import access, reminders
from kizuna.sales.models import Activity, Deal, Task
from kizuna.sales.schemas import ActivityCreate, ActivityUpdate, TaskCreate, TaskUpdate


def _links(session: Session, data: ActivityCreate | TaskCreate) -> dict[str, int | None]:
    customer_id, company_id, deal_id = data.customer_id, data.company_id, data.deal_id
    if customer_id is None and company_id is None and deal_id is None:
        raise ValidationError("link it to a customer_id, a company_id or a deal_id", field="customer_id")
    if deal_id is not None:
        deal = session.get(Deal, deal_id)
        if deal is None:
            raise ValidationError(f"deal {deal_id} does not exist", field="deal_id")
        customer_id = customer_id if customer_id is not None else deal.customer_id
        company_id = company_id if company_id is not None else deal.company_id
    if customer_id is not None:
        try:
            customer_id = resolve_id(session, customer_id)
        except NotFound as exc:
            raise ValidationError(f"customer {customer_id} does not exist", field="customer_id") from exc
    if company_id is not None and session.get(Company, company_id) is None:
        raise ValidationError(f"company {company_id} does not exist", field="company_id")
    return {"customer_id": customer_id, "company_id": company_id, "deal_id": deal_id}


def get_activity(session: Session, activity_id: int) -> Activity:
    activity = session.get(Activity, activity_id)
    if activity is None:
        raise NotFound(f"activity {activity_id} not found")
    return activity


def log_activity(session: Session, *, actor: Actor, data: ActivityCreate) -> Activity:
    access.require_edit(session, actor, "activities:write", actor.user_id, what="the activity")
    activity = Activity(
        kind=data.kind,
        subject=data.subject,
        notes=data.notes or "",
        occurred_at=data.occurred_at or utcnow(),
        duration_minutes=data.duration_minutes,
        user_id=actor.user_id,
        **_links(session, data),
    )
    session.add(activity)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="activity.create",
        entity_type="activity",
        entity_id=activity.id,
        customer_id=activity.customer_id,
        summary=f"{activity.kind}: {activity.subject}",
    )
    emit(session, "activity.logged", _activity_payload(activity), customer_id=activity.customer_id, origin=actor.origin)
    return activity


def _activity_payload(activity: Activity) -> dict[str, Any]:
    return {
        "activity_id": activity.id,
        "kind": activity.kind,
        "customer_id": activity.customer_id,
        "company_id": activity.company_id,
        "deal_id": activity.deal_id,
        "user_id": activity.user_id,
    }


def update_activity(
    session: Session, *, actor: Actor, activity_id: int, data: ActivityUpdate, expected_version: int | None
) -> Activity:
    activity = get_activity(session, activity_id)
    check_version(activity.version, if_match=expected_version, body=data.version)
    access.require_edit(session, actor, "activities:write", activity.user_id, what=f"activity {activity.id}")
    values = {k: v for k, v in data.model_dump(exclude_unset=True, exclude={"version"}).items() if v is not None}
    audit.apply_changes(
        session, activity, values, actor=actor, entity_type="activity", customer_id=activity.customer_id
    )
    return activity


def delete_activity(session: Session, *, actor: Actor, activity_id: int, expected_version: int | None) -> None:
    activity = get_activity(session, activity_id)
    check_version(activity.version, if_match=expected_version)
    access.require_edit(session, actor, "activities:write", activity.user_id, what=f"activity {activity.id}")
    audit.record(
        session,
        actor=actor,
        action="activity.delete",
        entity_type="activity",
        entity_id=activity.id,
        customer_id=activity.customer_id,
        summary=f"{activity.kind}: {activity.subject}",
    )
    session.delete(activity)
    session.flush()


def get_task(session: Session, task_id: int) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    return task


def _check_owner(session: Session, owner_id: int | None) -> None:
    if owner_id is not None and session.get(User, owner_id) is None:
        raise ValidationError(f"user {owner_id} does not exist", field="owner_id")


def _check_times(due_at: dt.datetime | None, remind_at: dt.datetime | None) -> None:
    if due_at is not None and remind_at is not None and remind_at > due_at:
        raise ValidationError("the reminder comes after the due time; remind before it is due", field="remind_at")


def create_task(session: Session, *, actor: Actor, data: TaskCreate) -> Task:
    owner_id = data.owner_id if data.owner_id is not None else actor.user_id
    access.require_edit(session, actor, "tasks:write", owner_id, what="the new task")
    _check_owner(session, owner_id)
    _check_times(data.due_at, data.remind_at)
    task = Task(
        title=data.title,
        notes=data.notes or "",
        due_at=data.due_at,
        remind_at=data.remind_at,
        owner_id=owner_id,
        status="open",
        **_links(session, data),
    )
    session.add(task)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="task.create",
        entity_type="task",
        entity_id=task.id,
        customer_id=task.customer_id,
        summary=task.title,
    )
    emit(session, "task.created", _task_payload(task), customer_id=task.customer_id, origin=actor.origin)
    reminders.schedule(session, task, origin=actor.origin)
    return task


def _task_payload(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "status": task.status,
        "owner_id": task.owner_id,
        "due_at": task.due_at.isoformat() if task.due_at else None,
        "remind_at": task.remind_at.isoformat() if task.remind_at else None,
        "customer_id": task.customer_id,
        "company_id": task.company_id,
        "deal_id": task.deal_id,
    }


def update_task(
    session: Session, *, actor: Actor, task_id: int, data: TaskUpdate, expected_version: int | None
) -> Task:
    task = get_task(session, task_id)
    check_version(task.version, if_match=expected_version, body=data.version)
    access.require_edit(session, actor, "tasks:write", task.owner_id, what=f"task {task.id}")
    values = data.model_dump(exclude_unset=True, exclude={"version"})
    if "notes" in values and values["notes"] is None:
        values["notes"] = ""
    for name in ("title", "status"):
        if name in values and values[name] is None:
            raise ValidationError(f"{name} cannot be emptied", field=name)
    if "owner_id" in values:
        access.require_edit(session, actor, "tasks:write", values["owner_id"], what="the task's new owner")
        _check_owner(session, values["owner_id"])
    _check_times(values.get("due_at", task.due_at), values.get("remind_at", task.remind_at))
    if "status" in values and values["status"] != task.status:
        values["completed_at"] = utcnow() if values["status"] == "done" else None
    diff = audit.apply_changes(session, task, values, actor=actor, entity_type="task", customer_id=task.customer_id)
    if diff:
        topic = "task.completed" if "status" in diff and task.status == "done" else "task.updated"
        emit(session, topic, _task_payload(task), customer_id=task.customer_id, origin=actor.origin)
        if "remind_at" in diff:
            reminders.schedule(session, task, origin=actor.origin)
    return task


@dataclass(frozen=True)
class MyTasks:
    overdue: list[Task]
    today: list[Task]


def my_tasks(
    session: Session, *, user_id: int | None, zone: str, now: dt.datetime | None = None, limit: int = 50
) -> MyTasks:
    """The user's open tasks due before today (overdue) and today, in ``zone``'s calendar."""
    if user_id is None:
        return MyTasks([], [])
    now = now or utcnow()
    tz = ZoneInfo(zone)
    start = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + dt.timedelta(days=1)
    base = select(Task).where(Task.owner_id == user_id, Task.status == "open", Task.due_at.is_not(None))
    overdue = list(session.scalars(base.where(Task.due_at < start).order_by(Task.due_at, Task.id).limit(limit)))
    today = list(
        session.scalars(base.where(Task.due_at >= start, Task.due_at < end).order_by(Task.due_at, Task.id).limit(limit))
    )
    return MyTasks(overdue=overdue, today=today)
