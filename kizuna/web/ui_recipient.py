"""What a mail's recipient opens, without signing in: the unsubscribe page (``/u/{token}``, RFC 8058 one-click
POST), the open pixel (``/t/o/{token}``) and the click redirect (``/t/c/{token}``).

No cookie and no CSRF token: the signed token in the URL is the only credential, made for one message by this
Kizuna. The unsubscribe GET only shows a confirmation page (mail scanners follow links); the POST unsubscribes
and answers 200 without a redirect, as RFC 8058 asks. Pages are in the customer's language.
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kizuna.db import take_write_lock
from kizuna.messaging import tracking, unsubscribe
from kizuna.web.deps import DB
from kizuna.web.i18n import LANG_COOKIE, LANGUAGES, translator
from kizuna.web.ui_base import env, ui_router

router = ui_router()


def _page(template: str, lang: str, *, status: int = 200, **context: object) -> HTMLResponse:
    lang = lang if lang in LANGUAGES else "ja"
    html = env.get_template(template).render(
        viewer=None, lang=lang, t=translator(lang), notice="", can=lambda _p: False, **context
    )
    return HTMLResponse(html, status_code=status)


def _lang(request: Request, locale: str) -> str:
    """The language the visitor picked on this site, else the customer's own."""
    chosen = request.cookies.get(LANG_COOKIE)
    return chosen if chosen in LANGUAGES else locale


@router.get("/u/{token}")
def unsubscribe_page(request: Request, session: DB, token: str) -> Response:
    """Asks to confirm; changes nothing."""
    _, target = unsubscribe.find(session, token)
    return _page("messaging/unsubscribe.html", _lang(request, target.locale), token=token, target=target, done=False)


@router.post("/u/{token}")
async def unsubscribe_now(request: Request, session: DB, token: str) -> Response:
    """Unsubscribe at once (the one-click POST of RFC 8058 or the page's button); 200, no redirect."""
    unsubscribe.read(token)  # a forged token is refused before anything is written
    form = await request.form()
    how = "page" if form.get("source") == "page" else "one_click"
    take_write_lock(session.connection())
    target = unsubscribe.unsubscribe(session, token, how=how)
    session.commit()
    return _page("messaging/unsubscribe.html", _lang(request, target.locale), token=token, target=target, done=True)


@router.get("/t/o/{token}")
def open_pixel(session: DB, token: str) -> Response:
    tracking.read_open(token)
    take_write_lock(session.connection())
    tracking.opened(session, token)
    session.commit()
    return Response(tracking.PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store, private"})


@router.get("/t/c/{token}")
def click(session: DB, token: str) -> Response:
    tracking.read_click(token)
    take_write_lock(session.connection())
    url = tracking.clicked(session, token)
    session.commit()
    return RedirectResponse(url, status_code=302)
