"""Is one variant's rate really different from another's? The test A/B splits, campaign tests and holdouts use.

Two groups: the two-proportion z-test (pooled), with the difference's 95% confidence interval; more groups:
Pearson's chi-square test of independence on the successes/failures table (scipy). A p-value below
``ALPHA`` is called significant; with fewer than ``MIN_TRIALS`` trials in a group nothing is called.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

ALPHA = 0.05
MIN_TRIALS = 30


@dataclass(frozen=True)
class Comparison:
    test: str  # "z" | "chi2" | "none"
    p_value: float | None
    significant: bool
    # For two groups: rate[1] - rate[0] and its 95% interval (unpooled standard error).
    difference: float | None = None
    low: float | None = None
    high: float | None = None


def rate(successes: int, trials: int) -> float | None:
    return successes / trials if trials else None


def compare(successes: list[int], trials: list[int]) -> Comparison:
    """Compare the success rates of two or more groups."""
    if len(successes) != len(trials) or len(trials) < 2:
        raise ValueError("compare needs the successes and trials of at least two groups")
    if any(s < 0 or s > t for s, t in zip(successes, trials, strict=True)):
        raise ValueError("successes must lie between 0 and the trials of their group")
    if min(trials) < MIN_TRIALS:
        return Comparison("none", None, False)
    if len(trials) == 2:
        (s0, s1), (n0, n1) = successes, trials
        p0, p1 = s0 / n0, s1 / n1
        pooled = (s0 + s1) / (n0 + n1)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
        if se == 0:
            return Comparison("z", 1.0, False, p1 - p0, p1 - p0, p1 - p0)
        z = (p1 - p0) / se
        p_value = float(2 * stats.norm.sf(abs(z)))
        se_diff = math.sqrt(p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1)
        margin = float(stats.norm.ppf(0.975)) * se_diff
        return Comparison("z", p_value, p_value < ALPHA, p1 - p0, p1 - p0 - margin, p1 - p0 + margin)
    table = [[s, t - s] for s, t in zip(successes, trials, strict=True)]
    if all(s == 0 for s in successes) or all(s == t for s, t in zip(successes, trials, strict=True)):
        return Comparison("chi2", 1.0, False)
    p_value = float(stats.chi2_contingency(table, correction=False).pvalue)
    return Comparison("chi2", p_value, p_value < ALPHA)
