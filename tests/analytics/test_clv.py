"""CLV and churn risk: the calibration summary, the BG/NBD and Gamma-Gamma fits (published CDNOW results and
parameters recovered from simulated data), the per-customer numbers and the bad input of issue 13.

Fits are slow-ish, so the CDNOW store fit is computed once per backend (module-scoped) and shared."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy.engine import Engine

from kizuna.analytics import clv_models as models
from kizuna.analytics import periods
from kizuna.analytics.clv import CLVSpec, NotEnoughData, clv, customer_clv
from kizuna.analytics.engine import ibis_url, open_store
from kizuna.db import transaction
from kizuna.errors import ValidationError
from tests import factories
from tests.analytics import cdnow
from tests.cli import kizuna as run_kizuna
from tests.conftest import clean

JST = ZoneInfo("Asia/Tokyo")
CDNOW_END = dt.date(1997, 9, 30)
CDNOW_SPEC = CLVSpec(calibration_end=CDNOW_END, currency="USD")
STORES = ("duckdb", "native")


def _open(engine: Engine, kind: str):  # noqa: ANN202
    url = engine.url.render_as_string(hide_password=False)
    return open_store(url, analytics_url="" if kind == "duckdb" else ibis_url(url))


@pytest.fixture(params=STORES)
def store(db: Engine, request: pytest.FixtureRequest):  # noqa: ANN201
    s = _open(db, request.param)
    yield s
    s.con.disconnect()


@pytest.fixture(scope="module")
def cdnow_fits(engine: Engine, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):  # noqa: ANN201
    """CDNOW imported through the importers once per backend, fitted by both stores; the tables are emptied after."""
    if engine.dialect.name == "sqlite":
        engine = request.getfixturevalue("_own_sqlite")  # the analytics tests' file (tests/analytics/conftest.py)
    clean(engine)
    cdnow_id = cdnow.import_into(engine, tmp_path_factory.mktemp("cdnow"))
    fits = {}
    for kind in STORES:
        s = _open(engine, kind)
        try:
            fits[kind] = customer_clv(s, CDNOW_SPEC)
        finally:
            s.con.disconnect()
    clean(engine)
    return fits, cdnow_id


# --- published results --------------------------------------------------------------------------------------------


def _published_arrays() -> tuple[np.ndarray, ...]:
    rows = cdnow.published_summary()
    return tuple(np.array([r[k] for r in rows.values()]) for k in ("x", "t_x", "T", "zbar"))


def test_bgnbd_fit_on_fader_hardies_cdnow_summary_reproduces_the_paper():
    x, t_x, T, _ = _published_arrays()  # noqa: N806
    fit = models.fit_bgnbd(x, t_x, T)
    # FHL (2005), section 5: r = 0.243, α = 4.414, a = 0.793, b = 2.426, LL = −9582.4.
    assert (round(fit.r, 3), round(fit.alpha, 3), round(fit.a, 3), round(fit.b, 3)) == (0.243, 4.414, 0.793, 2.426)
    assert models.bgnbd_log_likelihood(fit, x, t_x, T).sum() == pytest.approx(-9582.4, abs=0.05)
    # The paper's worked example: x = 2, t_x = 30.43, T = 38.86 expects 1.226 purchases in the next 39 weeks.
    assert models.expected_purchases(fit, 39, [2], [30.43], [38.86])[0] == pytest.approx(1.226, abs=5e-4)


def test_gamma_gamma_fit_on_the_cdnow_repeat_customers_reproduces_the_published_values():
    x, _, _, zbar = _published_arrays()
    fit = models.fit_gamma_gamma(x, zbar)
    # Fader & Hardie's Gamma-Gamma note: p = 6.25, q = 3.74, v = 15.44 on the 946 repeat customers. This file
    # rounds each mean to cents, which moves v in its last published digit (15.448); the store fit below uses the
    # exact means and gives 15.44.
    assert (round(fit.p, 2), round(fit.q, 2)) == (6.25, 3.74)
    assert fit.v == pytest.approx(15.44, abs=0.01)
    assert int(np.count_nonzero(x > 0)) == 946


def test_expected_purchases_agree_with_the_untransformed_formula():
    """The Euler-transformed hypergeometric term equals FHL's equation 10 as printed, where the latter is finite."""
    from scipy.special import hyp2f1

    p = models.BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    x = np.array([0, 1, 2, 5, 20, 40.0])
    t_x = np.array([0, 3.0, 30.43, 20, 38, 38.5])
    T = np.full_like(x, 38.86)  # noqa: N806
    t = 39.0
    z = t / (p.alpha + T + t)
    printed = (
        (p.a + p.b + x - 1)
        / (p.a - 1)
        * (1 - ((p.alpha + T) / (p.alpha + T + t)) ** (p.r + x) * hyp2f1(p.r + x, p.b + x, p.a + p.b + x - 1, z))
        * models.p_alive(p, x, t_x, T)
    )
    np.testing.assert_allclose(models.expected_purchases(p, t, x, t_x, T), printed, rtol=1e-9)


def test_expected_purchases_stay_finite_when_the_fit_finds_no_dropout_heterogeneity():
    """A fit on the demo shop's data (no spread in dropout) gave a and b in the millions: Euler's form overflows
    there. The numbers must be finite and tend to what smaller a and b of the same ratio give."""
    huge = models.BGNBDParams(r=0.1107, alpha=0.8002, a=6.042e6, b=1.662e7)
    x = np.array([0, 0, 1, 3, 20.0])
    t_x = np.array([0, 0, 8.57, 30, 59])
    T = np.array([99.7, 9.29, 33.4, 60, 60])  # noqa: N806
    got = models.expected_purchases(huge, 52.14, x, t_x, T)
    assert np.all(np.isfinite(got)) and np.all(got > 0)
    smaller = models.BGNBDParams(r=huge.r, alpha=huge.alpha, a=huge.a / 1e3, b=huge.b / 1e3)
    # They differ by O(x/a): 0.13% for x = 20 at a = 6,042.
    np.testing.assert_allclose(got, models.expected_purchases(smaller, 52.14, x, t_x, T), rtol=5e-3)
    value = models.discounted_value(huge, np.full_like(x, 4000.0), x, t_x, T, horizon=52.14, period=4.35,
                                    discount_rate=0.01)  # fmt: skip
    assert np.all(np.isfinite(value))


def test_cdnow_through_the_store_gives_fader_hardies_summary_and_the_published_fits(cdnow_fits):
    fits, cdnow_id = cdnow_fits
    params, rows = fits["duckdb"]
    published = cdnow.published_summary()
    assert (params.customers, params.repeat_customers) == (2357, 946)
    assert params.calibration_end == CDNOW_END and params.currency == "USD" and params.time_unit == "week"
    for row in rows:
        paper = published[cdnow_id[row.customer_id]]
        assert row.frequency == paper["x"], row
        # The published file rounds weeks to 2 decimals and means half up to cents.
        assert row.recency == pytest.approx(paper["t_x"], abs=0.005)
        assert abs(row.T - paper["T"]) <= 0.005
        assert float(row.monetary) == pytest.approx(paper["zbar"], abs=0.0101)
    b, g = params.bgnbd, params.gamma_gamma
    assert (round(b.r, 3), round(b.alpha, 3), round(b.a, 3), round(b.b, 3)) == (0.243, 4.414, 0.793, 2.426)
    assert (round(g.p, 2), round(g.q, 2), round(g.v, 2)) == (6.25, 3.74, 15.44)
    assert params.log_likelihood == pytest.approx(-9582.4, abs=0.05)


def test_cdnow_gives_the_same_numbers_on_duckdb_and_on_the_stores_own_engine(cdnow_fits):
    fits, _ = cdnow_fits
    (p1, rows1), (p2, rows2) = fits["duckdb"], fits["native"]
    assert p1 == p2
    assert rows1 == rows2


def test_cdnow_customer_values_are_consistent(cdnow_fits):
    fits, _ = cdnow_fits
    params, rows = fits["duckdb"]
    gg = models.GammaGammaParams(params.gamma_gamma.p, params.gamma_gamma.q, params.gamma_gamma.v)
    population = Decimal(f"{gg.population_mean():.2f}")
    for row in rows:
        assert 0 <= row.p_alive <= 1 and row.churn_risk == pytest.approx(1 - row.p_alive, abs=1e-15)
        assert row.expected_purchases >= 0 and row.clv >= 0
        if row.frequency == 0:
            assert row.p_alive == 1 and row.monetary == 0 and row.expected_spend == population
    # Discounting at 1% a month leaves CLV below the undiscounted purchases × spend, but not by more than a year's
    # worth of discount (1.01^-12 ≈ 0.887).
    for row in rows[:200]:
        plain = Decimal(row.expected_purchases) * row.expected_spend
        assert row.clv <= plain + Decimal("0.01")
        assert row.clv >= plain * Decimal("0.88") - Decimal("0.01")


# --- simulated from the model ------------------------------------------------------------------------------------


def _simulate(seed: int, n: int, *, r: float, alpha: float, a: float, b: float, p: float, q: float, v: float):  # noqa: ANN202
    """Customers drawn from BG/NBD + Gamma-Gamma: rate λ ~ Gamma(r, α), drop-out p ~ Beta(a, b) after each
    repeat purchase, ages uniform in 30..60 weeks; purchase values Gamma(p, ν) with ν ~ Gamma(q, v)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n)
    drop = rng.beta(a, b, n)
    age = rng.uniform(30, 60, n)
    nu = rng.gamma(q, 1 / v, n)
    x, t_x, m = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        t, spent = 0.0, 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > age[i]:
                break
            x[i] += 1
            t_x[i] = t
            spent += rng.gamma(p, 1 / nu[i])
            if rng.random() < drop[i]:
                break
        m[i] = spent / x[i] if x[i] else 0.0
    return x, t_x, age, m


def _log_standard_errors(total_ll, estimate: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """Standard errors of the log-parameters from the observed information (numerical Hessian at the estimate)."""
    theta = np.log(estimate)
    h = 1e-4
    k = len(theta)
    hessian = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            e_i, e_j = np.eye(k)[i] * h, np.eye(k)[j] * h
            hessian[i, j] = (
                total_ll(theta + e_i + e_j)
                - total_ll(theta + e_i - e_j)
                - total_ll(theta - e_i + e_j)
                + total_ll(theta - e_i - e_j)
            ) / (4 * h * h)
    return np.sqrt(np.diag(np.linalg.inv(-hessian)))


@pytest.fixture(scope="module")
def simulated():  # noqa: ANN201
    true = {"r": 0.5, "alpha": 6.0, "a": 0.7, "b": 2.5, "p": 5.0, "q": 3.0, "v": 20.0}
    x, t_x, age, m = _simulate(20261127, 5000, **true)
    return true, (x, t_x, age, m), models.fit_bgnbd(x, t_x, age), models.fit_gamma_gamma(x, m)


def test_bgnbd_recovers_the_parameters_it_simulated_within_three_standard_errors(simulated):
    true, (x, t_x, age, _), fit, _ = simulated
    estimate = np.array([fit.r, fit.alpha, fit.a, fit.b])
    se = _log_standard_errors(
        lambda th: models.bgnbd_log_likelihood(models.BGNBDParams(*np.exp(th)), x, t_x, age).sum(), estimate
    )
    # 5,000 customers pin r and α to a few percent; a and b are known to be loosely identified (wider errors).
    assert se[0] < 0.06 and se[1] < 0.08 and se[2] < 0.25 and se[3] < 0.3, se
    truth = np.array([true["r"], true["alpha"], true["a"], true["b"]])
    assert np.all(np.abs(np.log(estimate) - np.log(truth)) < 3 * se), (estimate, truth, se)
    # What the model predicts depends on well-determined combinations: the mean purchase rate r/α and the mean
    # drop-out probability a/(a+b).
    assert fit.r / fit.alpha == pytest.approx(true["r"] / true["alpha"], rel=0.06)
    assert fit.a / (fit.a + fit.b) == pytest.approx(true["a"] / (true["a"] + true["b"]), rel=0.1)


def test_gamma_gamma_recovers_the_parameters_it_simulated_within_three_standard_errors(simulated):
    true, (x, _, _, m), _, fit = simulated
    estimate = np.array([fit.p, fit.q, fit.v])
    keep = x > 0
    se = _log_standard_errors(
        lambda th: models.gamma_gamma_log_likelihood(models.GammaGammaParams(*np.exp(th)), x[keep], m[keep]).sum(),
        estimate,
    )
    assert np.all(se < 0.15), se
    truth = np.array([true["p"], true["q"], true["v"]])
    assert np.all(np.abs(np.log(estimate) - np.log(truth)) < 3 * se), (estimate, truth, se)
    # The population mean spend p v / (q − 1) is far better determined than p and v on their own.
    assert fit.population_mean() == pytest.approx(true["p"] * true["v"] / (true["q"] - 1), rel=0.05)


def test_expected_purchases_match_what_the_simulated_customers_go_on_to_do():
    """Customers simulated on past the calibration end: the conditional expectation predicts their next 26 weeks
    (the model's own claim, checked on the aggregate of 4,000 customers)."""
    rng = np.random.default_rng(7)
    truth = models.BGNBDParams(r=0.5, alpha=6.0, a=0.7, b=2.5)
    n, horizon = 4000, 26.0
    lam = rng.gamma(truth.r, 1 / truth.alpha, n)
    drop = rng.beta(truth.a, truth.b, n)
    age = rng.uniform(30, 60, n)
    x, t_x, later = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > age[i] + horizon:
                break
            if t <= age[i]:
                x[i] += 1
                t_x[i] = t
            else:
                later[i] += 1
            if rng.random() < drop[i]:
                break
    predicted = models.expected_purchases(truth, horizon, x, t_x, age)
    # Poisson-like noise on ~1,000 purchases is about 3%; 6% is two standard deviations.
    assert predicted.sum() == pytest.approx(later.sum(), rel=0.06)
    for k in (0, 1, 2):
        group = x == k
        assert predicted[group].sum() == pytest.approx(later[group].sum(), rel=0.15), k


# --- definitions and bad input, on DuckDB and on the store's own engine -----------------------------------------


def _usd(s, customer_id: int, amount: str, at: dt.datetime, **fields) -> None:  # noqa: ANN001
    factories.order(
        s, customer_id=customer_id, ordered_at=at, total_amount=Decimal(amount), currency="USD", lines=[], **fields
    )


def _jst(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=JST)


def _odd_customers(db: Engine) -> dict[str, int]:
    with transaction(db) as s:
        ids = {name: factories.customer(s, family_name=name).id for name in ("single", "same_day", "zero", "refund")}
        ids.update({name: factories.customer(s, family_name=name).id for name in ("future", "last_day")})
        _usd(s, ids["single"], "50.00", _jst(1997, 6, 1, 12))
        _usd(s, ids["same_day"], "20.00", _jst(1997, 3, 1, 10))
        _usd(s, ids["same_day"], "30.00", _jst(1997, 3, 1, 18))
        _usd(s, ids["same_day"], "40.00", _jst(1997, 5, 1, 9))
        _usd(s, ids["same_day"], "2.50", _jst(1997, 5, 1, 23, 59))
        _usd(s, ids["zero"], "30.00", _jst(1997, 2, 1, 12))
        _usd(s, ids["zero"], "0.00", _jst(1997, 4, 1, 12))  # a free sample: a purchase worth nothing
        _usd(s, ids["zero"], "10.00", _jst(1997, 6, 1, 12))
        _usd(s, ids["refund"], "30.00", _jst(1997, 2, 1, 12))
        _usd(s, ids["refund"], "-30.00", _jst(1997, 2, 10, 12))  # the refund, recorded as its own negative order
        _usd(s, ids["refund"], "100.00", _jst(1997, 3, 1, 12), status="cancelled")
        _usd(s, ids["future"], "10.00", _jst(1997, 1, 15, 12))
        _usd(s, ids["future"], "20.00", _jst(1997, 9, 30, 23, 59))  # the last minute of the calibration-end day
        _usd(s, ids["future"], "500.00", _jst(1997, 10, 1, 0, 1))  # the first minute after it
        _usd(s, ids["future"], "999.00", _jst(1998, 1, 1, 12))
        _usd(s, ids["last_day"], "15.00", _jst(1997, 9, 30, 8))
    return ids


def test_occasions_recency_age_and_spend_follow_the_documented_rules(db, store, tmp_path):
    cdnow.import_into(db, tmp_path, customers=300)
    ids = _odd_customers(db)
    params, rows = customer_clv(store, CDNOW_SPEC)
    by_id = {r.customer_id: r for r in rows}
    week = 7
    single = by_id[ids["single"]]
    assert (single.frequency, single.recency, single.T, single.monetary) == (0, 0, 121 / week, Decimal("0.00"))
    assert single.p_alive == 1 and single.churn_risk == 0
    population = params.gamma_gamma.p * params.gamma_gamma.v / (params.gamma_gamma.q - 1)
    assert single.expected_spend == Decimal(f"{population:.2f}")
    same_day = by_id[ids["same_day"]]  # two days with orders: one repeat, worth that day's 42.50
    assert (same_day.frequency, same_day.recency, same_day.monetary) == (1, 61 / week, Decimal("42.50"))
    zero = by_id[ids["zero"]]  # the zero-value order is a repeat purchase: mean of 0 and 10
    assert (zero.frequency, zero.monetary) == (2, Decimal("5.00"))
    refund = by_id[ids["refund"]]  # neither the refund nor the cancelled order is a purchase
    assert (refund.frequency, refund.monetary) == (0, Decimal("0.00"))
    future = by_id[ids["future"]]  # orders after the end day are not seen; the end day's last minute is
    assert (future.frequency, future.monetary) == (1, Decimal("20.00"))
    assert future.recency == future.T == (CDNOW_END - dt.date(1997, 1, 15)).days / week
    last_day = by_id[ids["last_day"]]  # first bought on the end day: age 0, still a customer to predict
    assert (last_day.frequency, last_day.recency, last_day.T, last_day.p_alive) == (0, 0, 0, 1)
    assert last_day.expected_purchases > single.expected_purchases > 0
    assert params.customers == 306
    for row in rows:
        assert np.isfinite([row.recency, row.T, row.expected_purchases, row.p_alive]).all()
        assert row.clv >= 0 and row.expected_spend >= 0


def test_days_as_the_unit_give_the_same_model_in_other_units(db, store, tmp_path):
    cdnow.import_into(db, tmp_path, customers=300)
    weeks, by_week = customer_clv(store, CDNOW_SPEC)
    days, by_day = customer_clv(store, CDNOW_SPEC.model_copy(update={"time_unit": "day"}))
    for w, d in zip(by_week, by_day, strict=True):
        assert (d.frequency, d.recency, d.T) == (w.frequency, pytest.approx(w.recency * 7), pytest.approx(w.T * 7))
    # Only α carries the unit: a day-based fit is the week-based one with α × 7, and predicts the same.
    assert days.bgnbd.alpha == pytest.approx(weeks.bgnbd.alpha * 7, rel=1e-3)
    assert days.bgnbd.r == pytest.approx(weeks.bgnbd.r, rel=1e-3)
    assert days.horizon == 365 and weeks.horizon == pytest.approx(365 / 7)
    for w, d in zip(by_week, by_day, strict=True):
        assert d.expected_purchases == pytest.approx(w.expected_purchases, rel=2e-3, abs=1e-6)
        assert d.p_alive == pytest.approx(w.p_alive, rel=2e-3, abs=1e-6)


def test_clv_discounts_month_by_month(db, store, tmp_path):
    cdnow.import_into(db, tmp_path, customers=300)
    _, plain = customer_clv(store, CDNOW_SPEC.model_copy(update={"discount_rate": 0.0}))
    _, discounted = customer_clv(store, CDNOW_SPEC.model_copy(update={"discount_rate": 0.05}))
    _, two_years = customer_clv(store, CDNOW_SPEC.model_copy(update={"discount_rate": 0.0, "horizon": 104}))
    for p, d, t in zip(plain, discounted, two_years, strict=True):
        # No discount: CLV is expected purchases over the horizon times expected spend (which the row shows
        # rounded to the cent, so up to half a cent per purchase away).
        purchases = Decimal(p.expected_purchases)
        assert abs(p.clv - purchases * p.expected_spend) <= Decimal("0.005") * purchases + Decimal("0.005")
        assert d.clv <= p.clv and t.expected_purchases >= p.expected_purchases
    hopeful = max(plain, key=lambda r: r.clv)
    assert next(d for d in discounted if d.customer_id == hopeful.customer_id).clv < hopeful.clv * Decimal("0.9")


def test_the_summary_result_cuts_clv_into_deciles_and_p_alive_into_tenths(db, store, tmp_path):
    cdnow.import_into(db, tmp_path, customers=300)
    _odd_customers(db)
    result = clv(store, CDNOW_SPEC.model_copy(update={"top": 5}))
    assert [d.customers for d in result.deciles] == [31] * 6 + [30] * 4  # 306 customers, ntile's rule
    assert sum(d.clv for d in result.deciles) == result.total_clv
    assert [d.clv for d in result.deciles] == sorted((d.clv for d in result.deciles), reverse=True)
    assert sum(b.customers for b in result.p_alive_bins) == 306
    ranked = sorted(customer_clv(store, CDNOW_SPEC)[1], key=lambda r: (-r.clv, r.customer_id))
    assert result.top_customers == ranked[:5]
    assert result.deciles[0].clv == sum((r.clv for r in ranked[:31]), Decimal("0.00"))


def test_too_few_customers_is_a_clear_error_not_numbers(db, store):
    with transaction(db) as s:
        for i in range(30):
            cid = factories.customer(s, family_name=f"客{i}").id
            _usd(s, cid, "10.00", _jst(1997, 3, 1 + i % 20, 12))
            if i < 5:  # five customers come back: too few to fit how much they spend
                _usd(s, cid, "12.00", _jst(1997, 6, 1, 12))
    with pytest.raises(NotEnoughData) as caught:
        customer_clv(store, CDNOW_SPEC)
    assert caught.value.key == "error.clv_too_few_customers" and caught.value.status_code == 422
    assert caught.value.params == {"customers": 30, "repeat": 5, "min_customers": 20, "min_repeat": 10}
    with pytest.raises(NotEnoughData):  # nothing in that currency
        customer_clv(store, CDNOW_SPEC.model_copy(update={"currency": "EUR"}))


def test_a_calibration_period_ending_in_the_future_is_refused(db, store):
    with pytest.raises(ValidationError) as caught:
        customer_clv(store, CLVSpec(calibration_end=periods.today() + dt.timedelta(days=1)))
    assert caught.value.key == "error.clv_future_calibration"


def test_the_horizon_is_at_most_ten_years_in_either_unit():
    from pydantic import ValidationError as PydanticValidationError

    assert CLVSpec(time_unit="day", horizon=3653).horizon == 3653
    with pytest.raises(PydanticValidationError):
        CLVSpec(time_unit="week", horizon=600)
    with pytest.raises(PydanticValidationError):
        CLVSpec(horizon=0)


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    from kizuna.config import get_settings

    monkeypatch.setenv("KIZUNA_DEFAULT_TIMEZONE", "Europe/Berlin")
    get_settings.cache_clear()
    yield ZoneInfo("Europe/Berlin")
    get_settings.cache_clear()


@pytest.mark.parametrize("backend", ["duckdb", "sqlite"])
def test_local_days_follow_daylight_saving_time(berlin, backend):
    import ibis

    rng = np.random.default_rng(3)
    start = int(dt.datetime(2023, 1, 1, tzinfo=dt.UTC).timestamp())
    instants = sorted(int(v) for v in rng.integers(start, start + 3 * 365 * 86400, 3000))
    # The minutes around each change of 2024 (last Sunday of March and of October), where a fixed offset errs.
    for change in (dt.datetime(2024, 3, 31, 1, tzinfo=dt.UTC), dt.datetime(2024, 10, 27, 1, tzinfo=dt.UTC)):
        base = int(change.timestamp())
        instants += [base + k * 60 for k in range(-90, 91, 15)]
        instants += [base - 3600 - 1800, base - 7200 - 1800]  # 23:30 local the evening before
    con = ibis.duckdb.connect() if backend == "duckdb" else ibis.sqlite.connect()
    table = ibis.memtable({"at": instants})
    got = con.execute(table.select(day=periods.local_day(table.at)))["day"].tolist()
    want = [periods.day_number(dt.datetime.fromtimestamp(t, berlin).date()) for t in instants]
    assert got == want
    assert len(periods._offsets("Europe/Berlin", 2026)) > 6  # the zone did change offsets in the range


# --- the CLI and the API -----------------------------------------------------------------------------------------


def _kizuna(db: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kizuna(*args, engine=db)


def test_cli_prints_the_fitted_parameters_and_writes_every_customer(db, tmp_path):
    cdnow.import_into(db, tmp_path, customers=300)
    out = tmp_path / "clv.csv"
    r = _kizuna(
        db,
        "analytics",
        "clv",
        "--calibration-end",
        "1997-09-30",
        "--time-unit",
        "week",
        "--currency",
        "usd",
        "--format",
        "json",
        "--output",
        str(out),
    )
    assert r.returncode == 0, r.stderr + r.stdout
    body = json.loads(r.stdout)
    assert set(body["bgnbd"]) == {"r", "alpha", "a", "b"} and set(body["gamma_gamma"]) == {"p", "q", "v"}
    s = open_store(db.url.render_as_string(hide_password=False))
    try:
        params, rows = customer_clv(s, CDNOW_SPEC)
    finally:
        s.con.disconnect()
    assert body["bgnbd"] == params.bgnbd.model_dump() and body["gamma_gamma"] == params.gamma_gamma.model_dump()
    lines = out.read_text(encoding="utf-8").splitlines()
    assert (
        lines[0] == "customer_id,frequency,recency,T,monetary,expected_purchases,p_alive,churn_risk,expected_spend,clv"
    )
    assert len(lines) == 1 + len(rows) == 301


def test_cli_table_and_bad_options(db, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from kizuna.analytics.cli import analytics_app
    from kizuna.config import get_settings

    cdnow.import_into(db, tmp_path, customers=300)
    # In process (the command reads the configured database), so only the test above pays for a new interpreter.
    monkeypatch.setenv("KIZUNA_DATABASE_URL", db.url.render_as_string(hide_password=False))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        table = runner.invoke(analytics_app, ["clv", "--calibration-end", "1997-09-30", "--currency", "USD"])
        assert table.exit_code == 0 and "Top customers by CLV" in table.output, table.output
        assert "300 customers" in table.output
        rows = runner.invoke(
            analytics_app, ["clv", "--calibration-end", "1997-09-30", "--currency", "USD", "--format", "csv"]
        )
        assert rows.exit_code == 0 and len(rows.output.strip().splitlines()) == 301
        bad = runner.invoke(analytics_app, ["clv", "--calibration-end", "1997-09-30", "--time-unit", "month"])
        assert bad.exit_code == 2 and "time_unit" in bad.output
        empty = runner.invoke(analytics_app, ["clv", "--calibration-end", "1997-09-30"])  # nothing in yen
        assert empty.exit_code == 2 and "at least 20 customers" in empty.output
    finally:
        get_settings.cache_clear()


def test_api_gives_parameters_deciles_and_top_customers(client, db, tmp_path):
    cdnow.import_into(db, tmp_path, customers=300)
    r = client.get(
        "/api/v1/analytics/clv",
        params={"calibration_end": "1997-09-30", "currency": "USD", "time_unit": "day", "top": 3},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["bgnbd"]) == {"r", "alpha", "a", "b"} and body["horizon"] == 365
    assert len(body["top_customers"]) == 3 and len(body["deciles"]) == 10
    assert Decimal(body["top_customers"][0]["clv"]) >= Decimal(body["top_customers"][1]["clv"])
    few = client.get("/api/v1/analytics/clv", params={"calibration_end": "1997-09-30"})
    assert few.status_code == 422 and "at least 20 customers" in few.json()["error"]["message"]
    long = client.get("/api/v1/analytics/clv", params={"calibration_end": "1997-09-30", "horizon": 600})
    assert long.status_code == 422 and "10 years" in long.json()["error"]["message"]


def test_cli_saves_the_predictions_into_the_customer_metrics(db, tmp_path):
    from sqlalchemy import func, select

    from kizuna.analytics.models import CustomerMetrics, MetricRun

    cdnow.import_into(db, tmp_path, customers=300)
    env = {"KIZUNA_DEFAULT_CURRENCY": "USD"}
    args = ("analytics", "clv", "--calibration-end", "1997-09-30", "--format", "json")
    # A back-test (calibration before today) is not saved unless asked.
    r = run_kizuna(*args, engine=db, **env)
    assert r.returncode == 0, r.stderr + r.stdout
    with transaction(db) as s:
        assert s.scalar(select(func.count()).select_from(MetricRun)) == 0
    r = run_kizuna(*args, "--save", engine=db, **env)
    assert r.returncode == 0, r.stderr + r.stdout
    body = json.loads(r.stdout)
    with transaction(db) as s:
        runs = {run.kind: run for run in s.scalars(select(MetricRun))}
        assert set(runs) == {"scores", "clv"}  # the scores were computed first: the CLV needs rows to go in
        assert runs["clv"].details["bgnbd"] == body["bgnbd"]
        saved = s.scalars(select(CustomerMetrics).where(CustomerMetrics.clv.is_not(None))).all()
        assert runs["clv"].customers == len(saved) == 300
        for m in saved:
            assert 0 <= m.p_alive <= 1 and m.churn_risk == pytest.approx(1 - m.p_alive)
            assert m.clv >= 0 and m.clv_computed_at is not None
    # The metrics are in USD here: a CLV in another currency is not saved beside them.
    r = _kizuna(db, *args, "--save", "--currency", "JPY")
    assert r.returncode == 2 and "USD" in r.stdout
