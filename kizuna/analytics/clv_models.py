"""The BG/NBD purchase model and the Gamma-Gamma spend model: likelihoods, maximum-likelihood fits and the
per-customer expectations, on plain arrays (``clv`` builds the arrays from the store).

BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way"): while alive a customer buys at a
Poisson rate λ ~ Gamma(r, α); after each repeat purchase they drop out with probability p ~ Beta(a, b). A
customer is summarised by ``x`` repeat purchases, the time ``t_x`` of the last one and their age ``T``, both
counted from their first purchase.

Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"; Colombo & Jiang 1999): each purchase's value is
Gamma(p, ν) with ν ~ Gamma(q, v) per customer, independent of the purchase process; a customer is summarised by
``x`` repeat purchases and their mean value ``m``.

Parameters are fitted on the log scale (so they stay positive) with L-BFGS-B on the negative mean
log-likelihood, computed with ``gammaln``/``betaln``/``logaddexp`` so that large counts do not overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1

from kizuna.errors import KizunaError

Array = NDArray[np.float64]


class ModelFitError(KizunaError):
    status_code = 422
    code = "clv_fit_failed"


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float

    def population_mean(self) -> float | None:
        """E[spend per purchase] of a customer about whom nothing is known (finite only when q > 1)."""
        return self.p * self.v / (self.q - 1) if self.q > 1 else None


def _arrays(*columns: ArrayLike) -> list[Array]:
    return [np.asarray(c, dtype=np.float64) for c in columns]


def bgnbd_log_likelihood(params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Array:  # noqa: N803
    """Each customer's log-likelihood under BG/NBD (FHL 2005, equation 6)."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    survived = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    # The second term exists only for x > 0 (b + x - 1 > 0 then); for x = 0 it is replaced by -inf.
    repeat = x > 0
    dropped = np.full_like(x, -np.inf)
    xr, tr = x[repeat], t_x[repeat]
    dropped[repeat] = betaln(a + 1, b + xr - 1) - betaln(a, b) - (r + xr) * np.log(alpha + tr)
    return head + np.logaddexp(survived, dropped)


def gamma_gamma_log_likelihood(params: GammaGammaParams, x: ArrayLike, m: ArrayLike) -> Array:
    """Each customer's log-likelihood of their mean spend ``m`` over ``x`` purchases (x > 0, m > 0)."""
    x, m = _arrays(x, m)
    p, q, v = params.p, params.q, params.v
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(px / p * m + v)
    )


def _fit(negative_mean_ll, start: Array, what: str) -> Array:  # noqa: ANN001
    """Minimise over log-parameters; a fit that does not converge to finite values is an error, not a number."""
    bounds = [(-20.0, 20.0)] * len(start)
    result = minimize(
        negative_mean_ll, start, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000, "ftol": 1e-13}
    )
    # Polish: L-BFGS-B with finite differences stops a little early on flat likelihoods; Nelder-Mead from there
    # settles the last digits without needing a gradient.
    polished = minimize(
        negative_mean_ll, result.x, method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-13, "maxiter": 20000}
    )
    best = polished if polished.fun <= result.fun else result
    if not np.all(np.isfinite(best.x)) or not np.isfinite(best.fun) or np.any(np.abs(best.x) >= 19.9):
        raise ModelFitError(
            f"the {what} model did not converge on this data (too few or too uniform customers?)",
            key="error.clv_fit_failed",
            params={"model": what},
        )
    return np.exp(best.x)


def _grouped(*columns: Array) -> tuple[list[Array], Array]:
    """Identical customers once with a weight: many share (x, t_x, T), and the fit is then much faster."""
    stacked = np.column_stack(columns)
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return [unique[:, i] for i in range(unique.shape[1])], counts.astype(np.float64)


def fit_bgnbd(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> BGNBDParams:  # noqa: N803
    """Maximum-likelihood BG/NBD parameters for customers with ``x`` repeat purchases, last at ``t_x``, age ``T``."""
    (xu, tu, Tu), w = _grouped(*_arrays(x, t_x, T))  # noqa: N806
    total = w.sum()

    def objective(theta: Array) -> float:
        r, alpha, a, b = np.exp(theta)
        ll = bgnbd_log_likelihood(BGNBDParams(r, alpha, a, b), xu, tu, Tu)
        value = -float(np.dot(w, ll)) / total
        return value if np.isfinite(value) else 1e300

    # Start near the data's scale: α is in the time unit, so a day-based fit starts 7 times larger than a weekly.
    alpha0 = max(float(np.average(Tu, weights=w)), 1e-3)
    params = _fit(objective, np.log(np.array([1.0, alpha0, 1.0, 1.0])), "BG/NBD")
    return BGNBDParams(*map(float, params))


def fit_gamma_gamma(x: ArrayLike, m: ArrayLike) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma parameters from customers with ``x`` > 0 repeat purchases of mean ``m`` > 0."""
    x, m = _arrays(x, m)
    keep = (x > 0) & (m > 0)
    (xu, mu), w = _grouped(x[keep], m[keep])
    total = w.sum()

    def objective(theta: Array) -> float:
        ll = gamma_gamma_log_likelihood(GammaGammaParams(*np.exp(theta)), xu, mu)
        value = -float(np.dot(w, ll)) / total
        return value if np.isfinite(value) else 1e300

    # v is in money: start it at the scale of the data so that yen and dollars converge alike.
    v0 = max(float(np.average(mu, weights=w)), 1e-6)
    params = _fit(objective, np.log(np.array([1.0, 2.0, v0])), "Gamma-Gamma")
    return GammaGammaParams(*map(float, params))


def p_alive(params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Array:  # noqa: N803
    """P(still alive at T | x, t_x, T) (FHL 2005, equation 11); 1 for customers who never repeated."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    out = np.ones_like(x)
    repeat = x > 0
    xr = x[repeat]
    log_odds = np.log(a) - np.log(b + xr - 1) + (r + xr) * (np.log(alpha + T[repeat]) - np.log(alpha + t_x[repeat]))
    out[repeat] = expit(-log_odds)
    return out


def expected_purchases(params: BGNBDParams, t: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Array:  # noqa: N803
    """E[purchases in the next ``t`` | x, t_x, T] (FHL 2005, equation 10).

    The hypergeometric term is evaluated after Euler's transformation,
    ``(1-z)^(r+x) 2F1(r+x, b+x; c; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; c; z)`` with ``c = a+b+x-1`` and
    ``z = t/(α+T+t)``: its first two arguments no longer grow with x, so the series stays well conditioned for
    customers with many purchases."""
    x, t_x, T = _arrays(x, t_x, T)
    if t <= 0:
        return np.zeros_like(x)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if abs(a - 1) < 1e-7:  # the formula's removable singularity at a = 1
        a = 1 + 1e-7
    c = a + b + x - 1
    z = t / (alpha + T + t)
    with np.errstate(invalid="ignore", over="ignore"):
        decay = np.power(1 - z, a - 1) * hyp2f1(a + b - 1 - r, a - 1, c, z)
        # A fit that finds no heterogeneity in dropout drives a and b to millions (their ratio stays): Euler's
        # form then overflows (0 · ∞), while the untransformed one converges, its series shrinking like b/(a+b).
        bad = ~np.isfinite(decay)
        if bad.any():
            xb, zb, cb = x[bad], z[bad], c[bad]
            decay[bad] = np.power(1 - zb, r + xb) * hyp2f1(r + xb, b + xb, cb, zb)
    if not np.all(np.isfinite(decay)):
        raise ModelFitError(
            "the BG/NBD model's expected purchases cannot be computed for these parameters "
            f"(r={r:.4g}, α={alpha:.4g}, a={a:.4g}, b={b:.4g})",
            key="error.clv_fit_failed",
            params={"model": "BG/NBD"},
        )
    return c / (a - 1) * (1 - decay) * p_alive(BGNBDParams(r, alpha, a, b), x, t_x, T)


def expected_spend(params: GammaGammaParams, x: ArrayLike, m: ArrayLike) -> Array:
    """E[value of a purchase | x, m]: a weighted mean of the population mean and the customer's own mean
    (FHL 2005 "RFM and CLV", equation 5), ``p (v + x m) / (p x + q - 1)``; the population mean for x = 0."""
    x, m = _arrays(x, m)
    p, q, v = params.p, params.q, params.v
    return p * (v + x * m) / (p * x + q - 1)


def discounted_value(
    params: BGNBDParams,
    spend: ArrayLike,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,  # noqa: N803
    *,
    horizon: float,
    period: float,
    discount_rate: float,
) -> Array:
    """Σ_k (E[N(t_k)] − E[N(t_{k−1})]) · spend / (1 + d)^k over periods of length ``period`` (t_k = min(k·period,
    horizon)): the purchases expected in each period, valued at the expected spend and discounted by the period's
    rate ``d``; a last, shorter period is discounted as a whole one."""
    x, t_x, T, spend = _arrays(x, t_x, T, spend)
    total = np.zeros_like(x)
    before = np.zeros_like(x)
    k = 0
    while k * period < horizon:
        k += 1
        upto = expected_purchases(params, min(k * period, horizon), x, t_x, T)
        total += (upto - before) / (1 + discount_rate) ** k
        before = upto
    return total * spend
