"""The transparent fallback score: rules stored as data, edited by managers and admins.

A rule adds ``points`` when its feature compares to its value (``stage >= 提案``, ``source = web``), or, with
``per``, points for each unit of the feature (``+10 per activity in the last 30 days``). A score is the sum,
held between 0 and 100, read as a probability (60 points → 0.6). ``stage`` compares the furthest stage reached
with the named stage of the deal's own pipeline (a pipeline without that stage skips the rule).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.errors import ValidationError
from kizuna.sales.models import Stage
from kizuna.sales.scoring.features import RULE_FEATURES, TEXT_FEATURES, Row
from kizuna.sales.scoring.models import RULE_OPS, SUBJECTS, ScoringRule
from kizuna.sales.scoring.schemas import RuleIn

# The rules a new installation starts with: the examples, and the same idea for leads.
DEFAULT_RULES: tuple[tuple[str, str, str, str, int], ...] = (
    ("deal", "stage", ">=", "提案", 20),
    ("deal", "activities_30d", "per", "", 10),
    ("deal", "prior_orders", ">=", "1", 15),
    ("deal", "company_employees", ">=", "100", 10),
    ("lead", "lifecycle_stage", "=", "prospect", 20),
    ("lead", "activities_30d", "per", "", 10),
    ("lead", "company_employees", ">=", "100", 10),
)


def list_rules(session: Session) -> list[ScoringRule]:
    """The rules, deals' first, in their order; the defaults are written on first use."""
    rules = list(session.scalars(select(ScoringRule).order_by(ScoringRule.subject, ScoringRule.position)))
    if rules or session.scalar(select(ScoringRule.id).limit(1)) is not None:
        return rules
    for position, (subject, feature, op, value, points) in enumerate(DEFAULT_RULES):
        session.add(ScoringRule(subject=subject, feature=feature, op=op, value=value, points=points, position=position))
    session.flush()
    return list(session.scalars(select(ScoringRule).order_by(ScoringRule.subject, ScoringRule.position)))


def _check(session: Session, index: int, rule: RuleIn) -> None:
    where = f"rule {index + 1}"
    if rule.subject not in SUBJECTS:
        raise ValidationError(f"{where}: subject '{rule.subject}' is not deal or lead", field="subject")
    allowed = RULE_FEATURES[rule.subject]
    if rule.feature not in allowed:
        raise ValidationError(
            f"{where}: '{rule.feature}' is not a {rule.subject} feature; use one of {', '.join(allowed)}",
            field="feature",
            key="error.scoring_rule_feature",
            params={"feature": rule.feature},
        )
    if rule.op not in RULE_OPS:
        raise ValidationError(f"{where}: operator '{rule.op}' is not one of {' '.join(RULE_OPS)}", field="op")
    if rule.op == "per":
        if rule.feature in TEXT_FEATURES:
            raise ValidationError(f"{where}: 'per' needs a number feature, not '{rule.feature}'", field="op")
        return
    if rule.feature == "stage":
        known = session.scalar(select(Stage.id).where((Stage.name == rule.value) | (Stage.name_en == rule.value)))
        if known is None:
            raise ValidationError(f"{where}: no pipeline has a stage named '{rule.value}'", field="value")
    elif rule.feature in TEXT_FEATURES:
        if rule.op != "=":
            raise ValidationError(f"{where}: '{rule.feature}' is compared with '=' only", field="op")
    else:
        try:
            float(rule.value)
        except ValueError:
            raise ValidationError(
                f"{where}: '{rule.feature}' is a number; '{rule.value}' is not",
                field="value",
                key="error.scoring_rule_number",
                params={"value": rule.value},
            ) from None


def replace_rules(session: Session, *, actor: Actor, rules: list[RuleIn]) -> list[ScoringRule]:
    """Replace every rule with ``rules`` (validated first: one bad rule changes nothing) and audit the change."""
    require(actor, "scoring:manage")
    for index, rule in enumerate(rules):
        _check(session, index, rule)
    before = [_plain(r) for r in list_rules(session)]
    session.execute(delete(ScoringRule))
    for position, rule in enumerate(rules):
        session.add(ScoringRule(**rule.model_dump(), position=position))
    session.flush()
    after = list(session.scalars(select(ScoringRule).order_by(ScoringRule.subject, ScoringRule.position)))
    audit.record(
        session,
        actor=actor,
        action="scoring.rules",
        entity_type="scoring_rules",
        details={"rules": [before, [_plain(r) for r in after]]},
        summary=f"{len(after)} rules",
    )
    return after


def _plain(rule: ScoringRule) -> dict[str, Any]:
    return {"subject": rule.subject, "feature": rule.feature, "op": rule.op, "value": rule.value, "points": rule.points}


def describe(rule: ScoringRule | dict[str, Any]) -> str:
    """A rule as a person reads it: ``+20 if stage >= 提案``, ``+10 per activities_30d``."""
    r = rule if isinstance(rule, dict) else _plain(rule)
    sign = f"{r['points']:+d}"
    if r["op"] == "per":
        return f"{sign} per {r['feature']}"
    return f"{sign} if {r['feature']} {r['op']} {r['value']}"


def _holds(rule: ScoringRule, row: Row) -> bool:
    if rule.feature == "stage":
        target = row.stage_positions.get(rule.value)
        if target is None:
            return False
        left, right = float(row.raw["stage"]), float(target)
    elif rule.feature in TEXT_FEATURES:
        return str(row.raw.get(rule.feature, "")) == rule.value
    else:
        left, right = float(row.raw.get(rule.feature) or 0), float(rule.value)
    return {
        ">=": left >= right,
        ">": left > right,
        "<=": left <= right,
        "<": left < right,
        "=": left == right,
    }[rule.op]


def score(rules: list[ScoringRule], row: Row) -> tuple[float, list[dict[str, Any]]]:
    """The rule score of ``row`` as a probability, and the rules that gave it points (largest first)."""
    total = 0
    fired = []
    for rule in rules:
        if rule.subject != row.subject:
            continue
        if rule.op == "per":
            points = int(rule.points * float(row.raw.get(rule.feature) or 0))
        else:
            points = rule.points if _holds(rule, row) else 0
        if points:
            total += points
            fired.append({"feature": rule.feature, "value": row.raw.get(rule.feature), "points": points,
                          "rule": describe(rule)})  # fmt: skip
    fired.sort(key=lambda f: -abs(f["points"]))
    return max(0, min(total, 100)) / 100, fired
