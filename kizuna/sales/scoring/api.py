"""/api/v1/scoring: train, the latest models' quality, the editable rules, and the call-first list."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from kizuna.auth.permissions import require
from kizuna.sales.scoring import rules, service
from kizuna.sales.scoring.schemas import CallFirstPage, ModelRead, RulesIn, RulesRead, TrainResult, model_read
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/scoring", tags=["scoring"])


@router.post("/train", response_model=TrainResult)
def train(session: DB, actor: APIActor) -> dict:
    """Fit the deal (and lead) model on the won/lost history and rescore every open deal and lead (managers
    and admins). Under 50 closed deals: 422 naming the count, nothing changed."""
    result = service.train(session, actor=actor)
    session.commit()
    return result


@router.post("/score", response_model=dict[str, int])
def score(session: DB, actor: APIActor) -> dict[str, int]:
    """Rescore the open deals and leads now, by the current model or rules (managers and admins)."""
    counts = service.rescore(session, actor=actor)
    session.commit()
    return counts


@router.get("/models", response_model=list[ModelRead])
def models(session: DB, actor: APIActor) -> list[dict]:
    """The newest model of each subject: cross-validated AUC and calibration table."""
    require(actor, "deals:read")
    return [model_read(m) for m in service.latest_models(session).values()]


def _rules_read(found: list) -> dict:
    return {
        "rules": [
            {
                "id": r.id,
                "subject": r.subject,
                "feature": r.feature,
                "op": r.op,
                "value": r.value,
                "points": r.points,
                "text": rules.describe(r),
            }
            for r in found
        ],  # fmt: skip
        "features": {k: list(v) for k, v in rules.RULE_FEATURES.items()},
    }


@router.get("/rules", response_model=RulesRead)
def get_rules(session: DB, actor: APIActor) -> dict:
    """The fallback rule score's rules (used while no model is trained), and the features a rule may test."""
    require(actor, "deals:read")
    found = rules.list_rules(session)
    session.commit()  # the defaults, written on first use
    return _rules_read(found)


@router.put("/rules", response_model=RulesRead)
def put_rules(data: RulesIn, session: DB, actor: APIActor) -> dict:
    """Replace every rule (managers and admins); one invalid rule rejects the whole list."""
    found = service.update_rules(session, actor=actor, new_rules=data.rules)
    session.commit()
    return _rules_read(found)


@router.get("/call-first", response_model=CallFirstPage)
def call_first(
    session: DB,
    actor: APIActor,
    owner_id: int | None = None,
    subject: Literal["deal", "lead"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict:
    """Whom to call first: open deals and leads by score × value, each with its top factors."""
    return {"items": service.call_first(session, actor=actor, owner_id=owner_id, subject=subject, limit=limit)}
