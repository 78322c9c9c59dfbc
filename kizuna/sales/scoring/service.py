"""Scoring's actions: train the models, score every open deal and lead, and read the call-first list.

``train`` fits on the closed-deal history and then rescores; with under ``MIN_HISTORY`` closed deals it refuses
with an error naming the count (nothing is written) and the scores keep coming from the rules. ``score_open``
replaces every stored score in one transaction: by the newest model of each subject, else by the rules.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.db import utcnow
from kizuna.errors import ValidationError
from kizuna.outbox.service import emit
from kizuna.sales.models import Deal, Stage
from kizuna.sales.scoring import features, model, rules
from kizuna.sales.scoring.models import Score, ScoringModel
from kizuna.sales.scoring.schemas import model_read

MIN_HISTORY = 50
SPECS = {
    "deal": (features.DEAL_NUMERIC, features.DEAL_CATEGORICAL),
    "lead": (features.LEAD_NUMERIC, features.LEAD_CATEGORICAL),
}


class NotEnoughHistory(ValidationError):
    """Too few closed deals (or only one outcome) to fit a model."""


def _enough(rows: list[features.Row], what: str) -> str | None:
    """Why ``rows`` cannot train a model, or None when they can."""
    won = sum(r.label or 0 for r in rows)
    lost = len(rows) - won
    if len(rows) < MIN_HISTORY:
        return (
            f"too little history to train the {what} model: {len(rows)} closed ({won} won, {lost} lost), "
            f"at least {MIN_HISTORY} needed; scores come from the editable rules until then"
        )
    # Cross-validation needs each outcome in every fold.
    if min(won, lost) < model.FOLDS:
        return (
            f"the {what} history has {won} won and {lost} lost; training needs at least {model.FOLDS} of each "
            "to tell them apart"
        )
    return None


def train(session: Session, *, actor: Actor) -> dict[str, Any]:
    """Fit the deal model (and the lead model when its history suffices), store them, rescore, schedule the
    next retraining. Raises ``NotEnoughHistory`` (nothing written) when the deal history is too short."""
    require(actor, "scoring:manage")
    deal_history = features.deal_rows(session, closed=True)
    problem = _enough(deal_history, "deal")
    if problem:
        raise NotEnoughHistory(problem, key="error.scoring_history", params={"closed": len(deal_history)})
    version = (session.scalar(select(func.max(ScoringModel.version))) or 0) + 1
    trained_at = utcnow()
    fitted, skipped = [], {}
    for subject, history in (("deal", deal_history), ("lead", features.lead_rows(session, training=True))):
        problem = _enough(history, subject)
        if problem:
            skipped[subject] = problem
            continue
        numeric, categorical = SPECS[subject]
        params, metrics = model.fit(history, numeric, categorical)
        stored = ScoringModel(
            version=version,
            subject=subject,
            trained_at=trained_at,
            trained_by=actor.label,
            metrics=metrics,
            features=[*numeric, *categorical],
            params=params,
        )
        session.add(stored)
        fitted.append(stored)
    session.flush()
    summary = {m.subject: m.metrics["cv_auc"] for m in fitted}
    audit.record(
        session,
        actor=actor,
        action="scoring.train",
        entity_type="scoring_model",
        entity_id=version,
        details={"cv_auc": summary, "rows": {m.subject: m.metrics["rows"] for m in fitted}},
        summary=f"version {version}",
    )
    emit(session, "scoring.trained", {"version": version, "cv_auc": summary}, origin=actor.origin)
    scored = score_open(session)
    from kizuna.sales.scoring import schedule

    schedule.ensure_scheduled(session)
    return {"version": version, "models": [model_read(m) for m in fitted], "skipped": skipped, "scored": scored}


def latest_models(session: Session) -> dict[str, ScoringModel]:
    """The newest model of each subject (absent: that subject is scored by the rules)."""
    found = {}
    for subject in ("deal", "lead"):
        newest = session.scalar(
            select(ScoringModel).where(ScoringModel.subject == subject).order_by(ScoringModel.id.desc()).limit(1)
        )
        if newest is not None:
            found[subject] = newest
    return found


def _lead_value(session: Session) -> Decimal:
    """What converting a lead is worth: the average won deal in the default currency (1 when none, so that
    leads are then ordered by probability alone)."""
    currency = get_settings().default_currency
    # sum and count rather than avg: the Money type (integer cents on SQLite) is kept by sum only.
    total, count = session.execute(
        select(func.sum(Deal.amount), func.count(Deal.id))
        .join(Stage, Stage.id == Deal.stage_id)
        .where(Stage.kind == "won", Deal.currency == currency)
    ).one()
    return (total / count).quantize(Decimal("0.01")) if count else Decimal(1)


def score_open(session: Session) -> dict[str, int]:
    """Score every open deal and open lead (replacing the stored scores); returns how many of each."""
    models = latest_models(session)
    rule_list = rules.list_rules(session)
    now = utcnow()
    lead_value = _lead_value(session)
    session.execute(delete(Score))
    counts = {}
    for subject, rows in (
        ("deal", features.deal_rows(session, closed=False)),
        ("lead", features.lead_rows(session, training=False)),
    ):
        if subject == "lead":
            for row in rows:
                row.value, row.currency = lead_value, get_settings().default_currency
        stored = models.get(subject)
        if stored is not None:
            results = model.predict(stored.params, rows)
        else:
            results = [rules.score(rule_list, row) for row in rows]
        values = [
            {
                "subject": subject,
                "deal_id": row.key if subject == "deal" else None,
                "customer_id": row.customer_id,
                "probability": probability,
                "method": "model" if stored is not None else "rules",
                "model_version": stored.version if stored is not None else None,
                "value": row.value,
                "currency": row.currency,
                "rank_value": probability * float(max(row.value, Decimal(1))),
                "factors": factors,
                "scored_at": now,
            }
            for row, (probability, factors) in zip(rows, results, strict=True)
        ]
        if values:
            # Core insert of the table: the ORM's bulk path spends longer on bookkeeping than the database does.
            session.execute(insert(Score.__table__), values)
        counts[subject] = len(values)
    return counts


def call_first(
    session: Session, *, actor: Actor, owner_id: int | None = None, subject: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Open deals and leads by probability × value, best first, each with its top factors. A deal or lead
    that closed (or stopped being a lead) since the last scoring is left out."""
    require(actor, "deals:read")
    from kizuna.customers.models import Customer

    query = (
        select(Score, Deal.name, Deal.owner_id, Customer.full_name, Customer.owner_id)
        .outerjoin(Deal, Deal.id == Score.deal_id)
        .outerjoin(Stage, Stage.id == Deal.stage_id)
        .outerjoin(Customer, Customer.id == Score.customer_id)
        .where(
            ((Score.subject == "deal") & (Stage.kind == "open"))
            | (
                (Score.subject == "lead")
                & Customer.lifecycle_stage.in_(features.LEAD_STAGES)
                & (Customer.status == "active")
            )
        )
        .order_by(Score.rank_value.desc(), Score.id)
        .limit(limit)
    )
    if subject is not None:
        query = query.where(Score.subject == subject)
    if owner_id is not None:
        query = query.where(
            ((Score.subject == "deal") & (Deal.owner_id == owner_id))
            | ((Score.subject == "lead") & (Customer.owner_id == owner_id))
        )
    items = []
    for score, deal_name, deal_owner, customer_name, customer_owner in session.execute(query):
        is_deal = score.subject == "deal"
        items.append(
            {
                "subject": score.subject,
                "deal_id": score.deal_id,
                "customer_id": score.customer_id,
                "name": (deal_name if is_deal else customer_name) or f"#{score.customer_id}",
                "owner_id": deal_owner if is_deal else customer_owner,
                "probability": round(score.probability, 4),
                "score": round(score.probability * 100),
                "value": score.value,
                "currency": score.currency,
                "rank_value": round(score.rank_value, 2),
                "method": score.method,
                "model_version": score.model_version,
                "factors": score.factors,
                "scored_at": score.scored_at,
            }
        )
    return items


def rescore(session: Session, *, actor: Actor) -> dict[str, int]:
    """Score the open deals and leads now (after new deals or rule changes), without retraining."""
    require(actor, "scoring:manage")
    return score_open(session)


def update_rules(session: Session, *, actor: Actor, new_rules: list[Any]) -> list[Any]:
    """Replace the rules (validated whole) and rescore, so the call-first list follows the edit at once."""
    saved = rules.replace_rules(session, actor=actor, rules=new_rules)
    score_open(session)
    return saved
