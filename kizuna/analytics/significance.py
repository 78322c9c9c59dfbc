"""Is one variant's rate really different from another's? The test A/B splits, campaign tests and holdouts use.

Two groups: the two-proportion z-test (pooled), with the difference's 95% confidence interval; more groups:
Pearson's chi-square test of independence on the successes/failures table (scipy). A p-value below
``ALPHA`` is called significant; with fewer than ``MIN_TRIALS`` trials in a group nothing is called.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


def two_proportion(x1: int, n1: int, x2: int, n2: int) -> tuple[float | None, float | None]:
    """(z, two-sided p) of the difference between x1/n1 and x2/n2 (pooled); None when it cannot be computed."""
    if not n1 or not n2:
        return None, None
    pooled = (x1 + x2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return None, None
    z = (x1 / n1 - x2 / n2) / spread
    from scipy import stats  # imported on use: scipy.stats costs ~2 s at every worker and CLI start

    return z, float(2 * stats.norm.sf(abs(z)))


def chi_square(groups: list[tuple[int, int]]) -> float | None:
    """The p-value of Pearson's chi-square test that all groups (successes, trials) share one rate."""
    table = [[x, n - x] for x, n in groups if n]
    if len(table) < 2 or any(sum(col) == 0 for col in zip(*table, strict=True)):
        return None
    from scipy import stats

    return float(stats.chi2_contingency(table, correction=False).pvalue)


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
        _, p_value = two_proportion(s1, n1, s0, n0)
        if p_value is None:  # every trial a success, or none: no difference to find
            return Comparison("z", 1.0, False, p1 - p0, p1 - p0, p1 - p0)
        se_diff = math.sqrt(p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1)
        from scipy import stats

        margin = float(stats.norm.ppf(0.975)) * se_diff
        return Comparison("z", p_value, p_value < ALPHA, p1 - p0, p1 - p0 - margin, p1 - p0 + margin)
    p_value = chi_square(list(zip(successes, trials, strict=True)))
    if p_value is None:
        return Comparison("chi2", 1.0, False)
    return Comparison("chi2", p_value, p_value < ALPHA)
