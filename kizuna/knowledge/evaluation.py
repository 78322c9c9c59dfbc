"""Measuring the FAQ bot on a set of questions: how often the right article is in the top 3, and how often a
question the base does not cover is handed to a person instead of answered. Used by the evaluation test, by
``benchmarks/faq_retrieval.py`` to compare analysers, and to tune the hand-over threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kizuna.knowledge.retrieval import Hit, KnowledgeIndex


@dataclass(frozen=True)
class Evaluation:
    top3: float  # share of answerable questions whose article is among the first three
    top1: float
    answered: float  # share of answerable questions answered (confident) with the right article in the top 3
    handed_over: float  # share of out-of-scope questions handed over
    misses: tuple[str, ...]  # answerable questions whose article was not in the top 3
    wrong_answers: tuple[str, ...]  # out-of-scope questions the bot would have answered


def _searches(index: KnowledgeIndex, questions: Sequence[str]) -> list[list[Hit]]:
    return [index.search(q, k=3) for q in questions]


def evaluate(
    index: KnowledgeIndex,
    answerable: Sequence[tuple[str, int]],
    out_of_scope: Sequence[str],
    *,
    threshold: float,
) -> Evaluation:
    """Score ``index`` on (question, right article id) pairs and on questions it should hand over."""
    hits = _searches(index, [q for q, _ in answerable])
    in_top3 = [any(h.id == right for h in found) for (_, right), found in zip(answerable, hits, strict=True)]
    top1 = [bool(found) and found[0].id == right for (_, right), found in zip(answerable, hits, strict=True)]
    confident = [bool(found) and found[0].confidence >= threshold for found in hits]
    outside = _searches(index, out_of_scope)
    handed = [not found or found[0].confidence < threshold for found in outside]
    n, m = max(len(answerable), 1), max(len(out_of_scope), 1)
    return Evaluation(
        top3=sum(in_top3) / n,
        top1=sum(top1) / n,
        answered=sum(t and c for t, c in zip(in_top3, confident, strict=True)) / n,
        handed_over=sum(handed) / m,
        misses=tuple(q for (q, _), ok in zip(answerable, in_top3, strict=True) if not ok),
        wrong_answers=tuple(q for q, ok in zip(out_of_scope, handed, strict=True) if not ok),
    )


def tune_threshold(
    index: KnowledgeIndex, answerable: Sequence[tuple[str, int]], out_of_scope: Sequence[str]
) -> tuple[float, list[tuple[float, float, float]]]:
    """The hand-over threshold that best balances answered and handed-over questions on a tuning set.

    Tries 0.01 steps; among the thresholds with the best sum of both rates (hand-over weighted double: a wrong
    answer costs more than a needless hand-over), returns the middle of the best run. Also returns the sweep
    as (threshold, answered, handed over) rows.
    """
    sweep = []
    for step in range(1, 100):
        threshold = step / 100
        result = evaluate(index, answerable, out_of_scope, threshold=threshold)
        sweep.append((threshold, result.answered, result.handed_over))
    best = max(a + 2 * h for _, a, h in sweep)
    chosen = [t for t, a, h in sweep if abs(a + 2 * h - best) < 1e-9]
    # The first contiguous run of best thresholds; its middle is furthest from either failure.
    run = [chosen[0]]
    for t in chosen[1:]:
        if abs(t - run[-1] - 0.01) > 1e-9:
            break
        run.append(t)
    return run[len(run) // 2], sweep
