"""The scoring model: a logistic regression on standardised features with Platt's sigmoid calibration, kept
as plain numbers.

Why this model: its per-feature contribution (coefficient × standardised value) is an honest "why" for each
score, it trains on 100,000 deals in seconds, and its parameters fit in a JSON column, so loading a model
never unpickles anything.

Calibration is what scikit-learn's ``CalibratedClassifierCV(method="sigmoid", ensemble=False)`` does: the
regression is fitted on all rows, and a sigmoid p = 1 / (1 + exp(a·f + b)) on its 5-fold out-of-fold decision
values f. It is done here with the public pieces (``cross_val_predict`` and a one-feature
``LogisticRegression``) because the same out-of-fold values then also give the cross-validated AUC (the AUC
of a row's score from a model that never saw it; a monotone sigmoid does not change it) and the calibration
table, without fitting every fold twice: 6 fits instead of 36, which is what keeps 100,000 deals under a
minute. The sigmoid's two numbers are fitted on 100,000 out-of-fold values, so reusing them for the table
flatters it by two parameters' worth, which is nothing at that size (and little at 50).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

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
    # Column by column with np.fromiter: assigning 100,000 × 40 numpy cells one by one took seconds.
    x = np.zeros((len(rows), len(columns)))
    levels: dict[str, dict[str, int]] = {}
    for i, (name, level) in enumerate(columns):
        if level is None:
            x[:, i] = np.fromiter((r.features[name] for r in rows), dtype=float, count=len(rows))
        else:
            levels.setdefault(name, {})[level] = i
    everyone = np.arange(len(rows))
    for name, index in levels.items():
        at = np.fromiter((index.get(str(r.features[name]), -1) for r in rows), dtype=int, count=len(rows))
        known = at >= 0
        x[everyone[known], at[known]] = 1.0
    return x


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

    base = LogisticRegression(max_iter=1000)
    splitter = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=0)
    # Each row's decision value from the model fitted on the other four fifths.
    out_of_fold = cross_val_predict(base, z, y, cv=splitter, method="decision_function")
    final = LogisticRegression(max_iter=1000).fit(z, y)
    # Platt scaling: a one-feature logistic regression from decision value to outcome (no penalty: two numbers
    # fitted on every row).
    platt = LogisticRegression(C=1e6).fit(out_of_fold.reshape(-1, 1), y)
    a, b = -float(platt.coef_[0][0]), -float(platt.intercept_[0])
    calibrated = 1.0 / (1.0 + np.exp(np.clip(a * out_of_fold + b, -50, 50)))
    params = {
        "columns": columns,
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": final.coef_[0].tolist(),
        "intercept": float(final.intercept_[0]),
        # Platt: p = 1 / (1 + exp(a·f + b)) for the regression's decision value f.
        "a": a,
        "b": b,
    }
    metrics = {
        "cv_auc": round(float(roc_auc_score(y, out_of_fold)), 4),
        "rows": len(rows),
        "positives": int(y.sum()),
        "base_rate": round(float(y.mean()), 4),
        "calibration": _calibration_table(y, calibrated),
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
    # Sum each feature's columns (a categorical's one-hot levels) with one product: rows × features.
    names = list(dict.fromkeys(name for name, _ in columns))
    groups = np.zeros((len(columns), len(names)))
    for i, (name, _) in enumerate(columns):
        groups[i, names.index(name)] = 1.0
    contributions = sign * (parts @ groups)
    top = np.argsort(-np.abs(contributions), axis=1)[:, :TOP_FACTORS]
    result = []
    for r, row in enumerate(rows):
        factors = [
            {"feature": names[j], "value": _shown(row, names[j]), "contribution": round(float(contributions[r, j]), 3)}
            for j in top[r]
            if abs(contributions[r, j]) > 1e-9
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
