"""What every UI page shares: the Jinja environment, rendering, HTML error pages and security headers."""

from __future__ import annotations

import datetime as dt
import json
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
from kizuna.web.forms import translate_error, translate_pydantic
from kizuna.web.i18n import LANG_COOKIE, catalog, choose_language, translator
from kizuna.web.labels import label, timeline_channel
from kizuna.web.session import PasswordChangeRequired, Viewer

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


def json_text(value: Any) -> str:
    """Stored JSON as a person reads it: indented, Japanese as text (never ``\\u5c71`` escapes), deep rows clipped."""
    return json.dumps(clip_json(value), ensure_ascii=False, indent=2, sort_keys=True, default=str)


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
env.filters["json_text"] = json_text
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


NOTICE_COOKIE = "kizuna_notice"
# What a page may say after a change succeeded, by key (``notice.<key>`` in the catalogs). Only these keys are
# read back from the cookie, so nobody can make a page say words of their own choosing.
NOTICES = (
    "saved",
    "created",
    "deleted",
    "consent_recorded",
    "identity_added",
    "identity_removed",
    "merged",
    "metrics_refresh_queued",
    "journey_published",
    "journey_enrolled",
    "journey_status",
    "card_inserted",
    "card_updated",
    "card_unchanged",
)


def with_notice(response: Response, key: str) -> Response:
    """Have the next page say ``notice.<key>`` once (a redirect after a successful form, Post/Redirect/Get)."""
    assert key in NOTICES, key
    response.set_cookie(NOTICE_COOKIE, key, max_age=120, httponly=True, samesite="lax", path="/")
    return response


def render(
    request: Request, template: str, viewer: Viewer | None = None, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """Render ``template`` with the viewer, their language's ``t`` and the CSRF token in the context."""
    viewer = viewer or getattr(request.state, "viewer", None)
    lang = viewer.lang if viewer else request_lang(request)
    notice_key = request.cookies.get(NOTICE_COOKIE, "")
    context.setdefault("notice", translator(lang)(f"notice.{notice_key}") if notice_key in NOTICES else "")
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    html = env.get_template(template).render(
        request=request,
        viewer=viewer,
        user=viewer.shown if viewer else None,
        can=viewer.actor.can if viewer else (lambda _perm: False),
        csrf_token=viewer.csrf_token if viewer else "",
        lang=lang,
        t=translator(lang),
        here=here,
        here_quoted=quote(here, safe=""),
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    if notice_key:
        response.delete_cookie(NOTICE_COOKIE, path="/")
    return response


def request_lang(request: Request) -> str:
    """The language of this request's pages: the signed-in viewer's, else the cookie's, else the default."""
    viewer = getattr(request.state, "viewer", None)
    return viewer.lang if viewer else choose_language(request.cookies.get(LANG_COOKIE))


def error_text(lang: str, status: int, exc: KizunaError | None = None, detail: str = "") -> str:
    """What the error page says, in ``lang``.

    A domain error naming a translation shows it. The English UI may show the error's precise English message;
    any other language shows the status's own text rather than English (``error.http_<status>``).
    """
    t = translator(lang)
    texts = catalog(lang)
    if exc is not None:
        if exc.key and exc.key in texts:
            return translate_error(t, lang, exc)
        if lang == "en":
            return exc.message
    elif detail and lang == "en" and status in (413, 422):
        return detail  # the limit or the field at fault: more useful than the generic text
    key = f"error.http_{status}"
    return t(key) if key in texts else t("error.http_other")


def error_page(
    request: Request, status: int, message: str = "", *, exc: KizunaError | None = None, detail: str = ""
) -> HTMLResponse:
    """An HTML error page in the request's language; ``message`` (already translated) wins when given."""
    text = message or error_text(request_lang(request), status, exc, detail)
    return render(request, "error.html", status=status, status_code=status, message=text)


def _validation_message(request: Request, errors: list[Any]) -> str:
    """Each Pydantic error in the request's language (a type without a translation falls back to the status)."""
    lang = request_lang(request)
    t = translator(lang)
    parts = []
    for e in errors:
        if f"error.{e.get('type', '')}" not in catalog(lang) and lang != "en":
            return error_text(lang, 422)
        text = translate_pydantic(t, lang, e)
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
        # A field's code name means something in English; in another language it would be a raw code.
        parts.append(f"{loc}: {text}" if loc and lang == "en" else text)
    return " ".join(parts) or error_text(lang, 422)


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
            except PasswordChangeRequired:
                response = RedirectResponse("/settings/password", status_code=303)
            except KizunaError as exc:
                response = error_page(request, exc.status_code, exc=exc)
            except (RequestValidationError, pydantic.ValidationError) as exc:
                response = error_page(request, 422, _validation_message(request, list(exc.errors())))
            except StaleDataError:
                response = error_page(request, 409, translator(request_lang(request))("error.stale_record"))
            except IntegrityError as exc:
                log.info("integrity error: %s", exc.orig)
                response = error_page(request, 409, translator(request_lang(request))("error.conflict_stored"))
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return ui_handler


def ui_router() -> APIRouter:
    return APIRouter(route_class=UIRoute, include_in_schema=False)
