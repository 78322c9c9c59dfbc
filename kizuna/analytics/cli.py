"""``kizuna analytics rfm|deciles``: a table in the terminal, or ``--format json|csv`` for scripts."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.table import Table

from kizuna.cli_support import CLI, console
from kizuna.cli_support import fail as _fail
from kizuna.errors import KizunaError

analytics_app = typer.Typer(help="Analyse customers and orders: RFM, deciles, CLV.", no_args_is_help=True)

Format = Annotated[str, typer.Option("--format", help="table (default), json or csv.")]
Day = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"])]


def _day(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value else None


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json", "csv"):
        console.print(f"[red]error (format):[/red] unknown format '{fmt}'; use table, json or csv")
        raise typer.Exit(code=2)


def _write_csv(rows: list[BaseModel]) -> None:
    if not rows:
        return
    dumped = [row.model_dump(mode="json") for row in rows]
    writer = csv.DictWriter(sys.stdout, fieldnames=list(dumped[0]))
    writer.writeheader()
    writer.writerows(dumped)


def _json(model: BaseModel | list[Any]) -> None:
    if isinstance(model, list):
        print(json.dumps([m.model_dump(mode="json") for m in model], ensure_ascii=False))
    else:
        print(model.model_dump_json())


@analytics_app.command("rfm")
def rfm_command(
    as_of: Annotated[
        dt.datetime | None, typer.Option("--as-of", formats=["%Y-%m-%d"], help="Score as of this day.")
    ] = None,
    start: Annotated[
        dt.datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="Only orders from this day on.")
    ] = None,
    bins: Annotated[int, typer.Option(help="Score groups per dimension (2-10).")] = 5,
    currency: Annotated[str | None, typer.Option(help="Currency analysed (default: KIZUNA_DEFAULT_CURRENCY).")] = None,
    include_refunds: Annotated[
        bool, typer.Option("--include-refunds", help="Net negative (refund) orders in.")
    ] = False,
    customers: Annotated[
        bool, typer.Option("--customers", help="Every customer's scores instead of the summary.")
    ] = False,
    fmt: Format = "table",
) -> None:
    """RFM scores and the named segments: customers and revenue per segment, or each customer's scores."""
    from kizuna.analytics import service
    from kizuna.analytics.rfm import RFMSpec

    _check_format(fmt)
    try:
        spec = RFMSpec(
            as_of=_day(as_of), start=_day(start), bins=bins, currency=currency, include_refunds=include_refunds
        )
        if customers:
            rows = service.rfm_scores(actor=CLI, spec=spec)
        else:
            result = service.rfm(actor=CLI, spec=spec)
    except (KizunaError, ValidationError) as exc:
        raise _fail(exc) from exc
    if customers:
        if fmt == "json":
            _json(rows)
        elif fmt == "csv":
            _write_csv(rows)
        else:
            table = Table("customer", "recency (days)", "orders", "spend", "R", "F", "M", "segment")
            for r in rows:
                table.add_row(
                    str(r.customer_id),
                    str(r.recency_days),
                    str(r.frequency),
                    f"{r.monetary:,}",
                    str(r.r),
                    str(r.f),
                    str(r.m),
                    r.segment,
                )
            console.print(table)
        return
    if fmt == "json":
        _json(result)
    elif fmt == "csv":
        _write_csv(result.segments)
    else:
        table = Table(
            "segment", "customers", "share", f"revenue ({result.currency})", "share", title=f"RFM as of {result.as_of}"
        )
        for seg in result.segments:
            table.add_row(
                seg.segment,
                f"{seg.customers:,}",
                f"{seg.share_of_customers:.1%}",
                f"{seg.revenue:,}",
                f"{seg.share_of_revenue:.1%}",
            )
        table.add_row("total", f"{result.customers:,}", "", f"{result.revenue:,}", "", style="bold")
        console.print(table)


@analytics_app.command("deciles")
def deciles_command(
    start: Annotated[
        dt.datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="First day (inclusive).")
    ] = None,
    end: Annotated[dt.datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day (inclusive).")] = None,
    currency: Annotated[str | None, typer.Option(help="Currency analysed (default: KIZUNA_DEFAULT_CURRENCY).")] = None,
    include_refunds: Annotated[
        bool, typer.Option("--include-refunds", help="Net negative (refund) orders in.")
    ] = False,
    fmt: Format = "table",
) -> None:
    """Customers with spend in the period in 10 equal groups, top spenders first."""
    from kizuna.analytics import service
    from kizuna.analytics.deciles import DecileSpec

    _check_format(fmt)
    try:
        spec = DecileSpec(start=_day(start), end=_day(end), currency=currency, include_refunds=include_refunds)
        result = service.deciles(actor=CLI, spec=spec)
    except (KizunaError, ValidationError) as exc:
        raise _fail(exc) from exc
    if fmt == "json":
        _json(result)
    elif fmt == "csv":
        _write_csv(result.deciles)
    else:
        table = Table(
            "decile",
            "customers",
            f"revenue ({result.currency})",
            "share",
            "cumulative",
            "orders",
            "avg order",
            title="Deciles",
        )
        for d in result.deciles:
            aov = f"{d.average_order_value:,}" if d.average_order_value is not None else ""
            table.add_row(
                str(d.decile),
                f"{d.customers:,}",
                f"{d.revenue:,}",
                f"{d.share:.1%}",
                f"{d.cumulative_share:.1%}",
                f"{d.orders:,}",
                aov,
            )
        table.add_row("total", f"{result.customers:,}", f"{result.revenue:,}", "", "", "", "", style="bold")
        console.print(table)


@analytics_app.command("refresh")
def refresh_command(
    as_of: Annotated[
        dt.datetime | None, typer.Option("--as-of", formats=["%Y-%m-%d"], help="Compute as of this day.")
    ] = None,
    currency: Annotated[
        str | None, typer.Option(help="Currency of the metrics (default: KIZUNA_DEFAULT_CURRENCY).")
    ] = None,
    categories: Annotated[
        bool,
        typer.Option("--categories/--no-categories", help="Also each customer's top category (reads every line)."),
    ] = True,
    fmt: Format = "table",
) -> None:
    """Recompute every customer's persisted metrics (RFM, decile, order totals, top category) now.

    The worker does this by itself a minute after new orders or imports, and once a day."""
    from kizuna.analytics import service
    from kizuna.analytics.metrics import MetricsSpec
    from kizuna.db import ready_engine

    _check_format(fmt)
    ready_engine()
    try:
        with console.status("Computing customer metrics…"):
            spec = MetricsSpec(as_of=_day(as_of), currency=currency, categories=categories)
            run = service.refresh_metrics(actor=CLI, spec=spec)
    except (KizunaError, ValidationError) as exc:
        raise _fail(exc) from exc
    if fmt == "json":
        _json(run)
    elif fmt == "csv":
        _write_csv([run])
    else:
        console.print(
            f"Metrics of {run.customers:,} customers as of {run.as_of} ({run.currency}): "
            f"{run.changed:,} changed, {run.seconds:.1f} s"
        )


@analytics_app.command("neighbors")
def neighbors_command(fmt: Format = "table") -> None:
    """Recompute which products customers buy together, the similarities recommendations read.

    The worker does this by itself once a day; until it has, recommendations compute them on each call."""
    from kizuna.analytics import service
    from kizuna.db import ready_engine

    _check_format(fmt)
    ready_engine()
    try:
        with console.status("Finding the products customers buy together…"):
            run = service.refresh_neighbors(actor=CLI)
    except KizunaError as exc:
        raise _fail(exc) from exc
    summary = {
        "customers": run.customers,
        "products": run.details.get("products", 0),
        "pairs": run.changed,
        "seconds": round(run.seconds, 3),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
    if fmt == "json":
        print(json.dumps(summary))
    elif fmt == "csv":
        _print_rows([summary])
    else:
        console.print(
            f"Similar products of {summary['products']:,} products from {run.customers:,} customers' baskets: "
            f"{run.changed:,} pairs kept, {run.seconds:.1f} s"
        )


def _print_rows(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


@analytics_app.command("cohorts")
def cohorts_command(
    start: Annotated[
        dt.datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="First acquisition day (inclusive).")
    ] = None,
    end: Annotated[
        dt.datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="Last acquisition day (inclusive).")
    ] = None,
    currency: Annotated[str | None, typer.Option(help="Currency analysed (default: KIZUNA_DEFAULT_CURRENCY).")] = None,
    months: Annotated[int, typer.Option(help="Month offsets shown after each cohort's month (1-120).")] = 12,
    part: Annotated[
        str, typer.Option(help="With --format csv: retention (default), time-between or categories.")
    ] = "retention",
    fmt: Format = "table",
) -> None:
    """Monthly cohorts of customers by their first order ever (those acquired in the period), with retention,
    repeat rate, time between purchases and second purchase by first category."""
    from kizuna.analytics import cohorts as analysis
    from kizuna.analytics import service

    _check_format(fmt)
    parts = {
        "retention": analysis.retention_rows,
        "time-between": analysis.time_between_rows,
        "categories": analysis.category_rows,
    }
    if part not in parts:
        console.print(f"[red]error (part):[/red] unknown part '{part}'; use retention, time-between or categories")
        raise typer.Exit(code=2)
    try:
        spec = analysis.CohortSpec(start=_day(start), end=_day(end), currency=currency, months=months)
        result = service.cohorts(actor=CLI, spec=spec)
    except (KizunaError, ValidationError) as exc:
        raise _fail(exc) from exc
    if fmt == "json":
        _json(result)
        return
    if fmt == "csv":
        _print_rows(parts[part](result))
        return
    retention = Table("cohort", "customers", *[f"+{k}" for k in range(result.months + 1)], title="Retention")
    for c in result.cohorts:
        retention.add_row(c.month, f"{c.customers:,}", *[_pct(s) for s in c.share])
    console.print(retention)
    r = result.repeat
    console.print(
        f"Repeat rate: {r.repeat_rate:.1%} ({r.repeat_customers:,} of {r.customers:,} customers bought on two days"
        f" or more; {r.multi_order_rate:.1%} placed two orders or more)"
    )
    between = result.time_between
    if between.gaps:
        console.print(
            f"Days between purchases: median {between.median_days:g}, mean {between.mean_days:.1f}"
            f" ({between.gaps:,} repeat purchases)"
        )
    categories = Table(
        "first category",
        "customers",
        "second purchase",
        *[f"within {n} days" for n in analysis.WINDOWS],
        title="Second purchase by first category",
    )
    for c in result.categories:
        categories.add_row(
            c.category or "(uncategorised)",
            f"{c.customers:,}",
            _pct(c.repeat_share),
            *[_pct(w.share) for w in c.windows],
        )
    console.print(categories)


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _ctb_value(value: str | None) -> str:
    from kizuna.analytics.ctb import UNCATEGORISED

    return UNCATEGORISED if value is None else value


@analytics_app.command("ctb")
def ctb_command(
    dimension: Annotated[str, typer.Option(help="category, taste or brand.")] = "category",
    start: Annotated[
        dt.datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="First day (inclusive).")
    ] = None,
    end: Annotated[
        dt.datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day (inclusive) and as-of day.")
    ] = None,
    half_life_days: Annotated[float, typer.Option(help="Days after which a purchase weighs half.")] = 180,
    currency: Annotated[str | None, typer.Option(help="Currency analysed (default: KIZUNA_DEFAULT_CURRENCY).")] = None,
    groups: Annotated[int, typer.Option(help="Customer groups (k-means) at most.")] = 5,
    customers: Annotated[
        bool, typer.Option("--customers", help="Every customer's top category, taste and brand.")
    ] = False,
    likely_value: Annotated[
        str | None, typer.Option("--likely", help="Customers ranked by how likely they buy this value next.")
    ] = None,
    exclude_within_days: Annotated[
        int, typer.Option(help="With --likely: leave out who bought the value this recently (-1: nobody).")
    ] = 90,
    limit: Annotated[int, typer.Option(help="With --likely: customers listed at most.")] = 100,
    fmt: Format = "table",
) -> None:
    """CTB: revenue and customers per category, taste or brand, and groups of customers who buy alike."""
    from kizuna.analytics import service
    from kizuna.analytics.ctb import CTBSpec
    from kizuna.analytics.ctb_likely import LikelySpec

    _check_format(fmt)
    common: dict[str, Any] = {
        "dimension": dimension,
        "start": _day(start),
        "end": _day(end),
        "half_life_days": half_life_days,
        "currency": currency,
        "groups": groups,
    }
    try:
        if likely_value is not None:
            exclude = None if exclude_within_days < 0 else exclude_within_days
            spec = LikelySpec(**common, value=likely_value, exclude_within_days=exclude, limit=limit)
            likely = service.ctb_likely(actor=CLI, spec=spec)
        elif customers:
            rows = service.ctb_customers(actor=CLI, spec=CTBSpec(**common))
        else:
            result = service.ctb(actor=CLI, spec=CTBSpec(**common))
    except (KizunaError, ValidationError) as exc:
        raise _fail(exc) from exc
    if likely_value is not None:
        if fmt == "json":
            _json(likely)
        elif fmt == "csv":
            _write_csv(likely.customers)
        else:
            title = f"Likely to buy {dimension} {likely_value} ({likely.buyers:,} bought it)"
            table = Table("customer", "score", "own share", "days since bought", "because", title=title)
            for r in likely.customers:
                since = "" if r.days_since_bought is None else str(r.days_since_bought)
                table.add_row(str(r.customer_id), f"{r.score:.3f}", _share(r.affinity), since, r.because or "")
            console.print(table)
        return
    if customers:
        if fmt == "json":
            _json(rows)
        elif fmt == "csv":
            _write_csv(rows)
        else:
            table = Table("customer", "spend", "lines", "category", "share", "taste", "share", "brand", "share")
            for c in rows:
                table.add_row(
                    str(c.customer_id),
                    f"{c.spend:,}",
                    str(c.lines),
                    c.top_category or "",
                    _share(c.category_share),
                    c.top_taste or "",
                    _share(c.taste_share),
                    c.top_brand or "",
                    _share(c.brand_share),
                )
            console.print(table)
        return
    if fmt == "json":
        _json(result)
    elif fmt == "csv":
        _write_csv(result.values)
    else:
        table = Table(
            dimension,
            "customers",
            f"revenue ({result.currency})",
            "share",
            "lines",
            "quantity",
            "top for",
            title=f"CTB by {dimension}, as of {result.as_of}",
        )
        for v in result.values:
            table.add_row(
                _ctb_value(v.value),
                f"{v.customers:,}",
                f"{v.revenue:,}",
                _share(v.share),
                f"{v.lines:,}",
                f"{v.quantity:,}",
                f"{v.top_customers:,}",
            )
        table.add_row("total", f"{result.customers:,}", f"{result.revenue:,}", "", "", "", "", style="bold")
        console.print(table)
        groups_table = Table("group", "customers", f"revenue ({result.currency})", "category", "taste", "brand")
        for g in result.groups:
            described = [
                ", ".join(f"{v.value} {v.share:.0%}" for v in values) for values in (g.category, g.taste, g.brand)
            ]
            groups_table.add_row(str(g.group), f"{g.customers:,}", f"{g.revenue:,}", *described)
        console.print(groups_table)


@analytics_app.command("recommend")
def recommend_command(
    customer: Annotated[list[int], typer.Option("--customer", help="Customer id (repeat for several).")],
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="Products per customer.")] = 5,
    fmt: Format = "table",
) -> None:
    """A few products for each customer, from what customers buy together (best sellers when that is not enough)."""
    from kizuna.analytics import service

    _check_format(fmt)
    try:
        found = service.recommendations(actor=CLI, customer_ids=customer, k=k)
    except KizunaError as exc:
        raise _fail(exc) from exc
    if fmt == "json":
        _json(found)
        return
    rows = [
        {"customer_id": c.customer_id, "rank": n, **p.model_dump(mode="json")}
        for c in found
        for n, p in enumerate(c.products, start=1)
    ]
    if fmt == "csv":
        if rows:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return
    table = Table("customer", "rank", "product", "sku", "category", "brand", "score", "reason")
    for r in rows:
        table.add_row(
            str(r["customer_id"]),
            str(r["rank"]),
            r["name"],
            r["sku"],
            r["category"] or "",
            r["brand"] or "",
            f"{r['score']:.3f}",
            r["reason"],
        )
    console.print(table)


@analytics_app.command("clv")
def clv_command(
    calibration_end: Annotated[
        dt.datetime | None,
        typer.Option("--calibration-end", formats=["%Y-%m-%d"], help="Last day fitted on (inclusive; default today)."),
    ] = None,
    time_unit: Annotated[str, typer.Option("--time-unit", help="day or week (default).")] = "week",
    horizon: Annotated[
        float | None, typer.Option(help="Periods of --time-unit to predict over (default: 365 days = 52.14 weeks).")
    ] = None,
    discount_rate: Annotated[float, typer.Option("--discount-rate", help="Discount rate per month.")] = 0.01,
    currency: Annotated[str | None, typer.Option(help="Currency analysed (default: KIZUNA_DEFAULT_CURRENCY).")] = None,
    output: Annotated[str | None, typer.Option("--output", help="Write every customer's row to this CSV file.")] = None,
    save: Annotated[
        bool | None,
        typer.Option(
            "--save/--no-save",
            help="Store each customer's prediction in the saved customer metrics (default: when fitted up to today; "
            "a back-test with an earlier --calibration-end is not saved unless asked).",
        ),
    ] = None,
    fmt: Format = "table",
) -> None:
    """BG/NBD + Gamma-Gamma fitted up to the calibration end: the parameters (json: {"bgnbd": ..., "gamma_gamma":
    ...}), and per customer expected purchases, P(alive), churn risk, expected spend and discounted CLV
    (--output FILE.csv, or --format csv on stdout; stored in the saved customer metrics, see --save)."""
    from kizuna.analytics import service
    from kizuna.analytics.clv import CLVSpec

    _check_format(fmt)
    try:
        spec = CLVSpec(
            calibration_end=_day(calibration_end),
            time_unit=time_unit,  # type: ignore[arg-type]  # validated by the spec
            horizon=horizon,
            discount_rate=discount_rate,
            currency=currency,
        )
        from kizuna.analytics import periods

        if save is None:
            save = spec.calibration_end in (None, periods.today())
        if save:
            from kizuna.db import ready_engine

            ready_engine()
            params, rows, _ = service.save_clv(actor=CLI, spec=spec)
        else:
            params, rows = service.clv_customers(actor=CLI, spec=spec)
    except (KizunaError, ValidationError) as exc:
        raise _fail(exc) from exc
    if output:
        with open(output, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(type(rows[0]).model_fields))
            writer.writeheader()
            writer.writerows(row.model_dump(mode="json") for row in rows)
    if fmt == "json":
        _json(params)
    elif fmt == "csv":
        _write_csv(rows)
    else:
        b, g = params.bgnbd, params.gamma_gamma
        console.print(
            f"BG/NBD r={b.r:.4g} α={b.alpha:.4g} a={b.a:.4g} b={b.b:.4g}; Gamma-Gamma p={g.p:.4g} q={g.q:.4g} "
            f"v={g.v:.4g} ({params.customers:,} customers, {params.repeat_customers:,} with repeat purchases, "
            f"calibration to {params.calibration_end}, {params.time_unit}s)"
        )
        table = Table(
            "customer",
            "repeat",
            "P(alive)",
            f"purchases in {params.horizon:.4g} {params.time_unit}s",
            f"spend ({params.currency})",
            "CLV",
            title="Top customers by CLV",
        )
        for r in sorted(rows, key=lambda r: (-r.clv, r.customer_id))[:20]:
            table.add_row(
                str(r.customer_id),
                str(r.frequency),
                f"{r.p_alive:.2f}",
                f"{r.expected_purchases:.2f}",
                f"{r.expected_spend:,}",
                f"{r.clv:,}",
            )
        console.print(table)
        if output:
            console.print(f"{len(rows):,} customers written to {output}")
