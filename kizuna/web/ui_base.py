"""What every UI page shares: the Jinja environment, rendering, HTML error pages and security headers."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kizuna.config import get_settings
from kizuna.customers.timeline import SOURCES
from kizuna.errors import KizunaError, NotAuthenticated
from kizuna.normalize import format_phone_national
from kizuna.schemas import clip_json
from kizuna.web.i18n import LANG_COOKIE, choose_language, translator
from kizuna.web.labels import label, timeline_channel
from kizuna.web.session import Viewer

log = logging.getLogger("kizuna.ui")
TEMPLATES = Path(__file__).parent / "templates"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
}


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or get_settings().default_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def localtime(value: dt.datetime | None, zone: str | None = None, *, with_zone: bool = False) -> str:
    """``2024-05-01 13:05`` in ``zone`` (default: the configured time zone), optionally followed by the zone name."""
    if value is None:
        return ""
    tz = _zone(zone)
    text = value.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    return f"{text} {tz.key}" if with_zone else text


def money(amount: Decimal | str | None, currency: str = "JPY") -> str:
    if amount is None:
        return ""
    value = Decimal(str(amount))
    return f"¥{value:,.0f}" if currency == "JPY" else f"{currency} {value:,.2f}"


def phone(value: str | None) -> str:
    try:
        return format_phone_national(value) or ""
    except Exception:  # noqa: BLE001 - a stored number the library cannot parse is shown as stored
        return value or ""


def query_string(params: Mapping[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` from ``params`` with ``changes`` applied; empty values are dropped; a list repeats its name."""
    merged = {**params, **changes}
    clean = {k: v for k, v in merged.items() if v not in (None, "", [], ())}
    return "?" + urlencode(clean, doseq=True) if clean else ""


env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["localtime"] = localtime
env.filters["money"] = money
env.filters["phone"] = phone
env.filters["clip_json"] = clip_json
env.globals["query_string"] = query_string
# Codes (order status, channel, event type, consent purpose...) as readable text: kizuna/web/labels.py.
env.globals["label"] = label
env.globals["timeline_channel"] = timeline_channel


@dataclass(frozen=True)
class TimelineKind:
    """How the 360 page shows one kind of timeline entry: its icon and its partial template."""

    icon: str
    partial: str


# One entry per kind of the timeline's registry: a kind added there without a partial fails to render (and
# tests/web/test_timeline_kinds.py says which file or translation is missing).
TIMELINE_KINDS = {
    source.kind: TimelineKind(icon=source.icon, partial=f"customers/timeline/{source.kind}.html") for source in SOURCES
}
env.globals["timeline_kinds"] = TIMELINE_KINDS


def render(
    request: Request, template: str, viewer: Viewer | None = None, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """Render ``template`` with the viewer, their language's ``t`` and the CSRF token in the context."""
    viewer = viewer or getattr(request.state, "viewer", None)
    lang = viewer.lang if viewer else choose_language(request.cookies.get(LANG_COOKIE))
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    html = env.get_template(template).render(
        request=request,
        viewer=viewer,
        user=viewer.user if viewer else None,
        can=viewer.actor.can if viewer else (lambda _perm: False),
        csrf_token=viewer.csrf_token if viewer else "",
        lang=lang,
        t=translator(lang),
        here=here,
        here_quoted=quote(here, safe=""),
        **context,
    )
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status=status, status_code=status, message=message)


def _validation_message(errors: list[Any]) -> str:
    parts = []
    for e in errors:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc}: {e.get('msg', '')}" if loc else str(e.get("msg", "")))
    return "; ".join(parts) or "invalid input"


class UIRoute(APIRoute):
    """A UI route: domain errors become HTML pages (sign-in redirect for 401) and every answer gets security headers.

    The JSON error handlers of the API stay untouched; the UI catches its errors before they reach them.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def ui_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except NotAuthenticated:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if request.method != "GET":
                    target = "/"
                response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            except KizunaError as exc:
                response = error_page(request, exc.status_code, exc.message)
            except RequestValidationError as exc:
                response = error_page(request, 422, _validation_message(list(exc.errors())))
            except pydantic.ValidationError as exc:
                response = error_page(request, 422, _validation_message(list(exc.errors())))
            except StaleDataError:
                response = error_page(request, 409, "the record was changed by someone else; reload and try again")
            except IntegrityError as exc:
                log.info("integrity error: %s", exc.orig)
                response = error_page(request, 409, "the change conflicts with stored data")
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return ui_handler


def ui_router() -> APIRouter:
    return APIRouter(route_class=UIRoute, include_in_schema=False)
