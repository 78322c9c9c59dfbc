"""The journey step ``open_inquiry``: opens a ticket for each customer reaching it (an NPS detractor's follow-up,
a failed delivery ...), assigned to the customer's owner when ``assign_owner`` is set, and goes on.

Idempotent per enrollment and step: a batch run again after a crash finds the ticket it opened (its subject and
the enrollment are recorded on the ticket's first message) instead of opening a second one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field
from sqlalchemy import select

from kizuna.auth import audit
from kizuna.customers.models import Customer
from kizuna.inquiries import service
from kizuna.inquiries.models import Inquiry, InquiryMessage
from kizuna.inquiries.schemas import InquiryCreate
from kizuna.journeys.handlers import forward
from kizuna.journeys.steps import Outcome, Run, StepContext, StepId, StepModel, register_step


class OpenInquiryStep(StepModel):
    type: Literal["open_inquiry"]
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(default="", max_length=5000)
    category: str | None = Field(default=None, max_length=200)
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    # Claim the ticket for the customer's owner (the account owner follows up), else it waits in the queue.
    assign_owner: bool = True
    next: StepId | None = None


def _key(ctx: StepContext, step: OpenInquiryStep, run: Run) -> str:
    return f"journey:{ctx.journey_id}:enrollment:{run.id}:step:{step.id}"


def run_open_inquiry(ctx: StepContext, step: OpenInquiryStep, runs: list[Run]) -> Mapping[int, Outcome]:
    session = ctx.session
    keys = {_key(ctx, step, r): r for r in runs}
    done = {
        (m.details or {}).get("journey_key")
        for m in session.scalars(
            select(InquiryMessage).where(
                InquiryMessage.direction == "note",
                InquiryMessage.customer_id.in_([r.customer_id for r in runs]),
            )
        )
    }
    owners = {
        row.id: row.owner_id
        for row in session.execute(
            select(Customer.id, Customer.owner_id).where(Customer.id.in_([r.customer_id for r in runs]))
        )
    }
    for key, run in keys.items():
        if key in done:
            continue
        # Each ticket is new: a journey's follow-up is its own matter, not a repeat of what the customer wrote.
        inquiry = service.open_inquiry(
            session,
            actor=ctx.actor,
            data=InquiryCreate(
                subject=step.subject,
                body=step.body,
                channel="api",
                customer_id=run.customer_id,
                category=step.category,
                priority=step.priority,
            ),  # fmt: skip
            repeat=False,
        ).inquiry
        session.add(
            InquiryMessage(
                inquiry_id=inquiry.id, customer_id=inquiry.customer_id, direction="note", author_label="journey",
                body=f"{ctx.journey_name} / {step.label or step.id}", details={"journey_key": key},
            )
        )  # fmt: skip
        owner = owners.get(run.customer_id)
        if step.assign_owner and owner is not None:
            table = Inquiry.__table__
            session.execute(
                table.update()
                .where(table.c.id == inquiry.id, table.c.claimed_by.is_(None))
                .values(claimed_by=owner, claimed_at=ctx.now, status="open", version=table.c.version + 1)
            )
            session.refresh(inquiry)
            audit.record(
                session, actor=ctx.actor, action="inquiry.claim", entity_type="inquiry", entity_id=inquiry.id,
                customer_id=inquiry.customer_id, summary=f"{service.reference(inquiry.id)} for the account owner",
            )  # fmt: skip
    session.flush()
    return {r.id: forward(step) for r in runs}


register_step("open_inquiry", run_open_inquiry, model=OpenInquiryStep)
