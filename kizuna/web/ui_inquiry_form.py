"""The public inquiry form (``/forms/inquiry``): a page the shop links to or embeds in an iframe, and its POST.

No sign-in, no cookie, no CSRF token: the form's signed token and honeypot keep bots out (kizuna/inquiries/
webform.py). The answer is a page, never a redirect to a URL taken from the request, so the form cannot be used
to send visitors elsewhere. The page may be framed by the sites of ``KIZUNA_INQUIRY_FORM_FRAME_ANCESTORS``.
"""

from __future__ import annotations

import pydantic
from fastapi import Request
from starlette.responses import HTMLResponse, Response

from kizuna.config import get_settings
from kizuna.db import take_write_lock
from kizuna.errors import KizunaError
from kizuna.inquiries import setup, webform
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, collect, read_form
from kizuna.web.i18n import LANG_COOKIE, LANGUAGES, translator
from kizuna.web.ui_base import env, ui_router

router = ui_router()


def _lang(request: Request, asked: str | None) -> str:
    if asked in LANGUAGES:
        return str(asked)
    chosen = request.cookies.get(LANG_COOKIE)
    return chosen if chosen in LANGUAGES else get_settings().default_locale


def _page(session: DB, lang: str, form: FormState, *, done: bool = False, status: int = 200) -> HTMLResponse:
    categories = [
        (c.id, (c.name_en or c.name) if lang == "en" else c.name)
        for c in setup.list_categories(session, active_only=True)
    ]
    html = env.get_template("inquiries/form.html").render(
        viewer=None, lang=lang, t=translator(lang), notice="", can=lambda _p: False, form=form, done=done,
        token=webform.issue_token(), categories=categories, honeypot=webform.HONEYPOT,
    )  # fmt: skip
    response = HTMLResponse(html, status_code=status)
    ancestors = get_settings().inquiry_form_frame_ancestors.strip() or "'none'"
    if ancestors == "none":
        ancestors = "'none'"
    # frame-ancestors replaces X-Frame-Options in browsers that know CSP; the shop's site may frame this page.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"form-action 'self'; frame-ancestors {ancestors}; base-uri 'none'; object-src 'none'"
    )
    # Browsers that know CSP follow frame-ancestors and ignore X-Frame-Options; older ones read the latter, which
    # has no "these sites" value: DENY or SAMEORIGIN where they match, else a value they ignore (framing allowed).
    legacy = {"'none'": "DENY", "'self'": "SAMEORIGIN"}.get(ancestors, "ALLOW-FROM-CSP")
    response.headers["X-Frame-Options"] = legacy
    return response


def _blank() -> FormState:
    return FormState(values={name: "" for name in webform.FIELDS})


@router.get("/forms/inquiry")
def form_page(request: Request, session: DB, lang: str | None = None) -> Response:
    return _page(session, _lang(request, lang), _blank())


@router.post("/forms/inquiry")
async def form_post(request: Request, session: DB, lang: str | None = None) -> Response:
    posted = await request.form()
    lang = _lang(request, lang or str(posted.get("lang") or ""))
    state = read_form(posted, webform.FIELDS)
    t = translator(lang)
    try:
        take_write_lock(session.connection())
        webform.submit(
            session,
            values=state.values,
            token=str(posted.get("form_token") or ""),
            honeypot=str(posted.get(webform.HONEYPOT) or ""),
        )
    except (KizunaError, pydantic.ValidationError) as exc:
        session.rollback()
        if isinstance(exc, KizunaError) and exc.field == "form":
            state.general.append(t(exc.key) if exc.key else exc.message)
        else:
            collect(state, t, lang, exc)
        return _page(session, lang, state, status=422)
    session.commit()
    return _page(session, lang, _blank(), done=True)
