"""CLV and churn risk: BG/NBD and Gamma-Gamma (``clv_models``) fitted on a calibration period, and per customer
the purchases expected over a horizon, the probability of being still alive, the expected spend per purchase and
the discounted customer lifetime value.

Definitions (tested in tests/analytics/test_clv.py):

- Counted orders: ``analytics.spend`` (completed, one currency, active customers) placed on or before the
  calibration-end day (that day included, whole, in the configured time zone); later orders are ignored.
  Refunds recorded as negative orders are never purchases and are not netted into spend here (the spend model
  needs positive values). Zero-value orders are purchases (the customer came back) worth 0.
- Purchase occasions: the customer's local dates with a counted order; several orders on one day are one
  occasion, worth their sum. ``frequency`` = occasions − 1 (repeat purchases); ``recency`` = days from the first
  occasion to the last; ``T`` (age) = days from the first occasion to the calibration-end day; both divided by 7
  when the unit is week (not whole weeks). A purchase on the calibration-end day has recency = T, and a customer
  whose first purchase is that day has T = 0. This is the convention of Fader and Hardie's CDNOW summary
  (first purchase 1997-01-01, end 1997-09-30: T = 272/7 = 38.86 weeks), which the tests reproduce.
- ``monetary``: mean spend of the repeat occasions (the first is left out, as in the papers); 0 without repeats.
  Gamma-Gamma is fitted on customers with repeats and ``monetary`` > 0; ``expected_spend`` is its conditional
  mean for customers with repeats and the population mean ``p v / (q − 1)`` for the others.
- ``expected_purchases``: BG/NBD conditional expectation over the horizon (default one year: 365 days, 52.14
  weeks); ``p_alive`` and ``churn_risk`` = 1 − ``p_alive``.
- ``clv``: Σ_k (E[N(t_k)] − E[N(t_{k−1})]) × expected_spend / (1 + d)^k over months of 365.25/12 days, with
  t_k = min(k months, horizon) and ``d`` the monthly discount rate (default 1%); d = 0 gives
  expected_purchases × expected_spend.
- Fewer than ``MIN_CUSTOMERS`` customers, or fewer than ``MIN_REPEAT_CUSTOMERS`` with a paid repeat purchase,
  cannot be fitted: a ``NotEnoughData`` error says so instead of returning numbers that mean nothing.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from kizuna.analytics import clv_models as models
from kizuna.analytics import periods
from kizuna.analytics.engine import Store
from kizuna.analytics.spend import SpendRule, counted_orders, default_currency
from kizuna.errors import KizunaError, ValidationError
from kizuna.schemas import MoneyOut

TimeUnit = Literal["day", "week"]
UNIT_DAYS = {"day": 1, "week": 7}
YEAR_DAYS = 365
MAX_HORIZON_DAYS = 3653
MONTH_DAYS = 365.25 / 12
MIN_CUSTOMERS = 20
MIN_REPEAT_CUSTOMERS = 10
CENT = Decimal("0.01")


class NotEnoughData(KizunaError):
    status_code = 422
    code = "not_enough_data"


class CLVSpec(BaseModel):
    calibration_end: dt.date | None = Field(
        default=None, description="Last day of the calibration period (inclusive; default: today)."
    )
    time_unit: TimeUnit = Field(default="week", description="Unit of recency, age, horizon and the fitted α.")
    horizon: float | None = Field(
        default=None, gt=0, description="Periods (in time_unit) to predict over (default: 365 days; at most 10 years)."
    )
    discount_rate: float = Field(default=0.01, ge=0, lt=1, description="Discount rate per month.")
    currency: str | None = Field(default=None, description="Currency analysed (default: the configured one).")
    top: int = Field(default=20, ge=0, le=1000, description="Customers listed in the result, highest CLV first.")

    @model_validator(mode="after")
    def _horizon_within_ten_years(self) -> CLVSpec:
        # CLV sums month by month; beyond ten years the discounting leaves little and the cost grows.
        if self.horizon is not None and self.horizon * UNIT_DAYS[self.time_unit] > MAX_HORIZON_DAYS:
            raise ValueError(f"the horizon is longer than 10 years ({MAX_HORIZON_DAYS} days)")
        return self


class BGNBD(BaseModel):
    r: float
    alpha: float
    a: float
    b: float


class GammaGamma(BaseModel):
    p: float
    q: float
    v: float


class CLVParams(BaseModel):
    bgnbd: BGNBD
    gamma_gamma: GammaGamma
    calibration_end: dt.date
    time_unit: TimeUnit
    horizon: float
    discount_rate: float
    currency: str
    customers: int
    repeat_customers: int = Field(description="Customers the spend model was fitted on (paid repeat purchases).")
    log_likelihood: float = Field(description="BG/NBD log-likelihood at the fitted parameters.")


class CLVRow(BaseModel):
    customer_id: int
    frequency: int
    recency: float
    T: float  # noqa: N815 - the papers' name for the customer's age
    monetary: MoneyOut
    expected_purchases: float
    p_alive: float
    churn_risk: float
    expected_spend: MoneyOut
    clv: MoneyOut


class CLVDecile(BaseModel):
    decile: int
    customers: int
    clv: MoneyOut
    average_clv: MoneyOut
    expected_purchases: float
    average_p_alive: float


class AliveBin(BaseModel):
    lower: float
    upper: float
    customers: int


class CLVResult(CLVParams):
    total_clv: MoneyOut
    expected_purchases: float
    deciles: list[CLVDecile]
    p_alive_bins: list[AliveBin]
    top_customers: list[CLVRow]


def calibration_summary(store: Store, spec: CLVSpec) -> tuple[dict[str, np.ndarray], dt.date, str]:
    """Per customer with a counted order by the calibration end: ``customer_id, frequency, recency_days,
    age_days, repeat_spend`` (decimal), from one Ibis expression."""
    end_day = spec.calibration_end or periods.today()
    if end_day > periods.today():
        raise ValidationError(
            f"the calibration period ends in the future ({end_day})",
            field="calibration_end",
            key="error.clv_future_calibration",
            params={"day": str(end_day)},
        )
    currency = default_currency(spec.currency)
    _, end = periods.bounds(None, end_day)
    orders = counted_orders(store, SpendRule(currency=currency, start=None, end=end, include_refunds=False))
    orders = orders.mutate(day=periods.local_day(orders.at))
    occasions = orders.group_by(["customer_id", "day"]).aggregate(spend=orders.amount.sum())
    occasions = occasions.mutate(first_day=occasions.day.min().over(group_by=occasions.customer_id))
    per = occasions.group_by("customer_id").aggregate(
        frequency=occasions.count() - 1,
        first_day=occasions.day.min(),
        last_day=occasions.day.max(),
        repeat_spend=occasions.spend.sum(where=occasions.day > occasions.first_day),
    )
    per = per.select(
        "customer_id",
        "frequency",
        "repeat_spend",
        recency_days=per.last_day - per.first_day,
        age_days=periods.day_number(end_day) - per.first_day,
    ).order_by("customer_id")
    # Column by column from Arrow: a row of Python objects per customer would cost more than the fit.
    table = per.to_pyarrow()
    columns = {
        name: table[name].to_numpy().astype(np.int64)
        for name in ("customer_id", "frequency", "recency_days", "age_days")
    }
    columns["repeat_spend"] = np.array(
        [Decimal(v) if v is not None else Decimal("0") for v in table["repeat_spend"].to_pylist()], dtype=object
    )
    return columns, end_day, currency


def customer_clv(store: Store, spec: CLVSpec) -> tuple[CLVParams, list[CLVRow]]:
    """The fitted parameters and every customer's row (by customer id): what a per-customer metrics table keeps."""
    summary, end_day, currency = calibration_summary(store, spec)
    unit = UNIT_DAYS[spec.time_unit]
    horizon = spec.horizon if spec.horizon is not None else YEAR_DAYS / unit
    x = summary["frequency"].astype(np.float64)
    t_x = summary["recency_days"] / unit
    age = summary["age_days"] / unit
    monetary = [
        (spend / int(n)).quantize(CENT) if n > 0 else Decimal("0.00")
        for spend, n in zip(summary["repeat_spend"], summary["frequency"], strict=True)
    ]
    # The models see the exact mean, not the rounded one the rows show.
    m = np.array([float(s) / n if n > 0 else 0.0 for s, n in zip(summary["repeat_spend"], x, strict=True)])
    customers = len(x)
    paid_repeat = int(np.count_nonzero((x > 0) & (m > 0)))
    if customers < MIN_CUSTOMERS or paid_repeat < MIN_REPEAT_CUSTOMERS:
        raise NotEnoughData(
            f"CLV needs at least {MIN_CUSTOMERS} customers and {MIN_REPEAT_CUSTOMERS} with a paid repeat purchase by "
            f"{end_day} ({currency}); found {customers} and {paid_repeat}",
            field="calibration_end",
            key="error.clv_too_few_customers",
            params={
                "customers": customers,
                "repeat": paid_repeat,
                "min_customers": MIN_CUSTOMERS,
                "min_repeat": MIN_REPEAT_CUSTOMERS,
            },
        )
    bg = models.fit_bgnbd(x, t_x, age)
    gg = models.fit_gamma_gamma(x, m)
    alive = models.p_alive(bg, x, t_x, age)
    purchases = models.expected_purchases(bg, horizon, x, t_x, age)
    spend = models.expected_spend(gg, x, m)
    population = gg.population_mean()
    # q ≤ 1 leaves the population mean infinite: customers without repeats then get the observed mean instead.
    fallback = population if population is not None else float(m[(x > 0) & (m > 0)].mean())
    spend = np.where(x > 0, spend, fallback)
    value = models.discounted_value(
        bg, spend, x, t_x, age, horizon=horizon, period=MONTH_DAYS / unit, discount_rate=spec.discount_rate
    )
    params = CLVParams(
        bgnbd=BGNBD(r=bg.r, alpha=bg.alpha, a=bg.a, b=bg.b),
        gamma_gamma=GammaGamma(p=gg.p, q=gg.q, v=gg.v),
        calibration_end=end_day,
        time_unit=spec.time_unit,
        horizon=horizon,
        discount_rate=spec.discount_rate,
        currency=currency,
        customers=customers,
        repeat_customers=paid_repeat,
        log_likelihood=float(models.bgnbd_log_likelihood(bg, x, t_x, age).sum()),
    )
    rows = [
        CLVRow(
            customer_id=int(summary["customer_id"][i]),
            frequency=int(x[i]),
            recency=float(t_x[i]),
            T=float(age[i]),
            monetary=monetary[i],
            expected_purchases=float(purchases[i]),
            p_alive=float(alive[i]),
            churn_risk=float(1 - alive[i]),
            expected_spend=_money(spend[i]),
            clv=_money(value[i]),
        )
        for i in range(customers)
    ]
    return params, rows


def _money(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


def clv(store: Store, spec: CLVSpec) -> CLVResult:
    """The fit, CLV by decile (customers sorted by CLV, ties by id, in 10 groups as the deciles analysis), the
    customers per tenth of P(alive), and the top customers by CLV."""
    params, rows = customer_clv(store, spec)
    ranked = sorted(rows, key=lambda r: (-r.clv, r.customer_id))
    deciles = []
    start = 0
    for k in range(10):
        size = len(ranked) // 10 + (1 if k < len(ranked) % 10 else 0)
        group = ranked[start : start + size]
        start += size
        if not group:
            continue
        total = sum((r.clv for r in group), Decimal("0.00"))
        deciles.append(
            CLVDecile(
                decile=k + 1,
                customers=len(group),
                clv=total,
                average_clv=(total / len(group)).quantize(CENT),
                expected_purchases=sum(r.expected_purchases for r in group),
                average_p_alive=sum(r.p_alive for r in group) / len(group),
            )
        )
    counts = [0] * 10
    for r in rows:
        counts[min(int(r.p_alive * 10), 9)] += 1
    bins = [AliveBin(lower=k / 10, upper=(k + 1) / 10, customers=n) for k, n in enumerate(counts)]
    return CLVResult(
        **params.model_dump(),
        total_clv=sum((r.clv for r in rows), Decimal("0.00")),
        expected_purchases=sum(r.expected_purchases for r in rows),
        deciles=deciles,
        p_alive_bins=bins,
        top_customers=ranked[: spec.top],
    )
