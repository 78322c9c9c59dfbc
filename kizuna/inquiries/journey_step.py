"""The journey step ``open_inquiry``: opens a ticket for each customer reaching it (an NPS detractor's follow-up,
a failed delivery ...), assigned to the customer's owner when ``assign_owner`` is set, and goes on.

Idempotent per enrollment and step: a batch run again after a crash finds the ticket it opened (its subject and
the enrollment are recorded on the ticket's first message) instead of opening a second one.

The subject and body are templates (Jinja's immutable sandbox, as message templates are) that may use ``event``,
the event that enrolled the customer (``type``, ``properties``, ``channel``, ``occurred_at``; empty when the
journey was not started by an event), and ``customer`` (the fields message templates see):
``NPS {{ event.properties.score }}: {{ event.properties.comment }}``. A template that does not parse, names another
variable or calls a function is refused when the journey is saved or published; a value the event lacks renders
empty. What an agent reads is text: nothing is HTML-escaped and the result is never rendered again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from jinja2 import ChainableUndefined, TemplateError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import Field, field_validator
from sqlalchemy import select

from kizuna.auth import audit
from kizuna.customers.models import Customer
from kizuna.inquiries import service
from kizuna.inquiries.models import Inquiry, InquiryMessage
from kizuna.inquiries.schemas import InquiryCreate
from kizuna.journeys.handlers import forward
from kizuna.journeys.steps import Outcome, Run, StepContext, StepId, StepModel, register_step
from kizuna.journeys.triggers import trigger_events
from kizuna.messaging.templates import customer_variables

VARIABLES = ("event", "customer")


def _finalize(value: Any) -> Any:
    return "" if value is None else value


# Lenient where message templates are strict: a detractor who left no comment still gets their ticket.
_ENV = ImmutableSandboxedEnvironment(autoescape=False, undefined=ChainableUndefined, finalize=_finalize)


def check_template(source: str) -> str:
    """``source`` when it is a template the step can render; ``ValueError`` saying what is wrong otherwise."""
    try:
        ast = _ENV.parse(source)
        _ENV.from_string(source)  # compiling finds unknown filters and tests too
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise ValueError(f"not a valid template{f' (line {line})' if line else ''}: {exc.message}") from exc
    unknown = sorted(meta.find_undeclared_variables(ast) - set(VARIABLES))
    if unknown:
        raise ValueError(f"unknown variable {', '.join(unknown)}; the template may use {', '.join(VARIABLES)}")
    for call in ast.find_all(nodes.Call):
        name = getattr(call.node, "name", None) or getattr(call.node, "attr", None) or "?"
        raise ValueError(f"{name}(...) is a call; the template may only show values (and use filters)")
    return source


def render(source: str, variables: Mapping[str, Any]) -> tuple[str, str | None]:
    """The rendered text and None, or the template as written and the reason it could not be rendered."""
    if "{" not in source:
        return source, None
    try:
        return _ENV.from_string(source).render(variables), None
    except Exception as exc:  # noqa: BLE001 - a failing expression (1/0) must not stop the journey
        return source, f"{type(exc).__name__}: {exc}"


class OpenInquiryStep(StepModel):
    type: Literal["open_inquiry"]
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(default="", max_length=5000)
    category: str | None = Field(default=None, max_length=200)
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    # Claim the ticket for the customer's owner (the account owner follows up), else it waits in the queue.
    assign_owner: bool = True
    next: StepId | None = None

    @field_validator("subject", "body")
    @classmethod
    def _template(cls, value: str) -> str:
        return check_template(value)


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
    events = trigger_events(session, [r.id for r in runs])
    customers = customer_variables(session, [r.customer_id for r in runs])
    owners = {
        row.id: row.owner_id
        for row in session.execute(
            select(Customer.id, Customer.owner_id).where(Customer.id.in_([r.customer_id for r in runs]))
        )
    }
    for key, run in keys.items():
        if key in done:
            continue
        variables = {"event": events.get(run.id, {}), "customer": customers.get(run.customer_id, {}).get("customer")}
        subject, subject_problem = render(step.subject, variables)
        body, body_problem = render(step.body, variables)
        # A header-like subject is one line; an empty rendering keeps the template's text rather than no subject.
        subject = " ".join(subject.split())[:300] or step.subject
        # Each ticket is new: a journey's follow-up is its own matter, not a repeat of what the customer wrote.
        inquiry = service.open_inquiry(
            session,
            actor=ctx.actor,
            data=InquiryCreate(
                subject=subject,
                body=body[:5000],
                channel="api",
                customer_id=run.customer_id,
                category=step.category,
                priority=step.priority,
            ),  # fmt: skip
            repeat=False,
        ).inquiry
        problems = [p for p in (subject_problem, body_problem) if p]
        session.add(
            InquiryMessage(
                inquiry_id=inquiry.id, customer_id=inquiry.customer_id, direction="note", author_label="journey",
                body=f"{ctx.journey_name} / {step.label or step.id}",
                details={"journey_key": key, **({"template_problems": problems} if problems else {})},
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
