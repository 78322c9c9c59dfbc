"""``kizuna analytics rfm|deciles``: a table in the terminal, or ``--format json|csv`` for scripts."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from kizuna.auth.permissions import Actor
from kizuna.errors import KizunaError

analytics_app = typer.Typer(help="Analyse customers and orders: RFM, deciles, CLV.", no_args_is_help=True)
console = Console()
CLI = Actor.system("cli", origin="cli")
Format = Annotated[str, typer.Option("--format", help="table (default), json or csv.")]
Day = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"])]


def _day(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value else None


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json", "csv"):
        console.print(f"[red]error (format):[/red] unknown format '{fmt}'; use table, json or csv")
        raise typer.Exit(code=2)


def _fail(exc: Exception) -> typer.Exit:
    if isinstance(exc, ValidationError):
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        console.print(f"[red]error:[/red] {message}")
    else:
        assert isinstance(exc, KizunaError)
        where = f" ({exc.field})" if exc.field else ""
        console.print(f"[red]error{where}:[/red] {exc.message}")
    return typer.Exit(code=2)


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
    fmt: Format = "table",
) -> None:
    """BG/NBD + Gamma-Gamma fitted up to the calibration end: the parameters (json: {"bgnbd": ..., "gamma_gamma":
    ...}), and per customer expected purchases, P(alive), churn risk, expected spend and discounted CLV
    (--output FILE.csv, or --format csv on stdout)."""
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
