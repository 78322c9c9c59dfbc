"""The scoring model: a logistic regression on standardised features, calibrated with Platt's sigmoid by
scikit-learn's ``CalibratedClassifierCV``, kept as plain numbers.

Why this model: its per-feature contribution (coefficient × standardised value) is an honest "why" for each
score, it trains on 100,000 deals in seconds, and its parameters fit in a JSON column, so loading a model
never unpickles anything. ``CalibratedClassifierCV(ensemble=False)`` fits the regression on all rows and the
sigmoid on out-of-fold decision values, which is exactly one coefficient vector plus two numbers (a, b).

The reported quality is honest too: the AUC and the calibration table come from 5-fold cross-validation, each
fold's model (calibration included) fitted without the rows it predicts.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from kizuna.sales.scoring.features import Row

FOLDS = 5
# A category enters the model when at least this many rows have it (a rare owner or source would only add noise).
MIN_LEVEL_ROWS = 5
MAX_LEVELS = 30
BUCKETS = 10
# How many factors a score keeps: the largest contributions, either way.
TOP_FACTORS = 3


def encoding(rows: list[Row], numeric: tuple[str, ...], categorical: tuple[str, ...]) -> list[list[str | None]]:
    """The columns: each numeric feature as ``[name, None]``, then ``[name, level]`` for the frequent levels of
    each categorical one."""
    columns: list[list[str | None]] = [[name, None] for name in numeric]
    for name in categorical:
        counts = Counter(str(r.features[name]) for r in rows)
        frequent = [level for level, n in counts.most_common(MAX_LEVELS) if n >= MIN_LEVEL_ROWS]
        columns += [[name, level] for level in sorted(frequent)]
    return columns


def matrix(rows: list[Row], columns: list[list[str | None]]) -> np.ndarray:
    """The rows as a float matrix in ``columns`` order (an unseen category is all zeros)."""
    index = {(name, level): i for i, (name, level) in enumerate(columns)}
    numeric = [(i, name) for i, (name, level) in enumerate(columns) if level is None]
    categorical = sorted({name for name, level in columns if level is not None})
    x = np.zeros((len(rows), len(columns)))
    for r, row in enumerate(rows):
        for i, name in numeric:
            x[r, i] = float(row.features[name])
        for name in categorical:
            i = index.get((name, str(row.features[name])))
            if i is not None:
                x[r, i] = 1.0
    return x


def _calibrated(c: float = 1.0) -> CalibratedClassifierCV:
    base = LogisticRegression(C=c, max_iter=1000)
    return CalibratedClassifierCV(base, method="sigmoid", cv=FOLDS, ensemble=False)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    # A feature (nearly) constant in the history carries no information; dividing by its tiny spread would
    # blow any new row's small difference up into a huge contribution (deals closed within seconds in tests).
    scale[scale < 1e-3] = 1.0
    return mean, scale


def _calibration_table(y: np.ndarray, p: np.ndarray) -> list[dict[str, Any]]:
    """Predicted probability bucket (0–10 %, 10–20 % ...) against the win rate observed in it."""
    table = []
    bucket = np.minimum((p * BUCKETS).astype(int), BUCKETS - 1)
    for b in range(BUCKETS):
        inside = bucket == b
        count = int(inside.sum())
        if not count:
            continue
        table.append(
            {
                "bucket": f"{b * 100 // BUCKETS}–{(b + 1) * 100 // BUCKETS}%",
                "predicted": round(float(p[inside].mean()), 4),
                "observed": round(float(y[inside].mean()), 4),
                "count": count,
            }
        )
    return table


def fit(rows: list[Row], numeric: tuple[str, ...], categorical: tuple[str, ...]) -> tuple[dict, dict]:
    """Fit on labelled ``rows``; returns (params, metrics). Callers check there are enough rows of each class."""
    started = time.perf_counter()
    columns = encoding(rows, numeric, categorical)
    x = matrix(rows, columns)
    y = np.array([r.label for r in rows], dtype=int)
    mean, scale = _standardise(x)
    z = (x - mean) / scale

    # Cross-validated probabilities: every row predicted by a model (calibration included) that never saw it.
    out_of_fold = np.zeros(len(rows))
    splitter = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=0)
    for train, test in splitter.split(z, y):
        fold = _calibrated().fit(z[train], y[train])
        out_of_fold[test] = fold.predict_proba(z[test])[:, 1]

    final = _calibrated().fit(z, y)
    inner = final.calibrated_classifiers_[0]
    base: LogisticRegression = inner.estimator
    sigmoid = inner.calibrators[0]
    params = {
        "columns": columns,
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": base.coef_[0].tolist(),
        "intercept": float(base.intercept_[0]),
        # Platt: p = 1 / (1 + exp(a·f + b)) for the regression's decision value f.
        "a": float(sigmoid.a_),
        "b": float(sigmoid.b_),
    }
    metrics = {
        "cv_auc": round(float(roc_auc_score(y, out_of_fold)), 4),
        "rows": len(rows),
        "positives": int(y.sum()),
        "base_rate": round(float(y.mean()), 4),
        "calibration": _calibration_table(y, out_of_fold),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return params, metrics


def predict(params: dict, rows: list[Row]) -> list[tuple[float, list[dict[str, Any]]]]:
    """Each row's calibrated probability and its top factors (feature, contribution in log-odds, raw value)."""
    if not rows:
        return []
    columns = params["columns"]
    z = (matrix(rows, columns) - np.array(params["mean"])) / np.array(params["scale"])
    parts = z * np.array(params["coef"])
    decision = parts.sum(axis=1) + params["intercept"]
    a, b = params["a"], params["b"]
    probability = 1.0 / (1.0 + np.exp(np.clip(a * decision + b, -50, 50)))
    # The sigmoid is decreasing in f when a > 0: contributions then push the other way.
    sign = -1.0 if a > 0 else 1.0
    names = [name for name, _ in columns]
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name, []).append(i)
    result = []
    for r, row in enumerate(rows):
        contributions = {name: sign * float(parts[r, idx].sum()) for name, idx in groups.items()}
        top = sorted(contributions.items(), key=lambda kv: -abs(kv[1]))[:TOP_FACTORS]
        factors = [
            {"feature": name, "value": _shown(row, name), "contribution": round(value, 3)}
            for name, value in top
            if not math.isclose(value, 0.0, abs_tol=1e-9)
        ]
        result.append((float(probability[r]), factors))
    return result


# The model's transformed feature → the raw value a person understands.
_RAW = {
    "amount_log": "amount",
    "stage_reached": "stage",
    "company_employees_log": "company_employees",
    "prior_spend_log": "prior_spend",
    "owner": None,
}


def _shown(row: Row, name: str) -> Any:
    if name == "owner":
        return row.owner_id
    key = _RAW.get(name, name)
    return row.raw.get(key) if key else None
