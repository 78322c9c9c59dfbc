"""FAQ articles in the UI: the list (with a "what would the bot answer" box), new and edit forms; and the public
page an article's link in the chat opens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.errors import KizunaError, NotFound, ValidationError
from kizuna.knowledge import service
from kizuna.knowledge.answer import answer
from kizuna.knowledge.schemas import ArticleCreate, ArticleUpdate
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, read_form, submit, translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router, with_notice

router = ui_router()
FIELDS = ("title", "body", "language", "tags", "published")


async def _posted(request: Request) -> FormData:
    return await request.form()


Posted = Annotated[FormData, Depends(_posted)]


def _payload(values: dict[str, str]) -> dict[str, Any]:
    tags = [t.strip() for t in values.get("tags", "").replace("、", ",").split(",") if t.strip()]
    return {
        "title": values.get("title", ""),
        "body": values.get("body", ""),
        "language": values.get("language") or None,
        "tags": tags,
        "published": values.get("published") in ("on", "true", "1"),
    }


def _form(request: Request, viewer: Viewer, state: FormState, *, article_id: int | None = None,
          version: int | None = None, status: int = 200) -> Response:  # fmt: skip
    t = translator(viewer.lang)
    return render(
        request, "knowledge/form.html", viewer, status=status, form=state, article_id=article_id, version=version,
        languages=[("ja", t("knowledge.lang.ja")), ("en", t("knowledge.lang.en"))],
    )  # fmt: skip


@router.get("/knowledge")
def knowledge_list(
    request: Request, session: DB, viewer: CurrentViewer, q: str | None = None, language: str | None = None,
    ask: str | None = None,
) -> Response:  # fmt: skip
    require(viewer.actor, "knowledge:read")
    lang = language if language in ("ja", "en") else None
    tried = answer(session, ask[:4000]) if ask and ask.strip() else None
    return render(
        request, "knowledge/list.html", viewer, articles=service.list_articles(session, language=lang, q=q),
        q=q or "", language=lang or "", ask=ask or "", tried=tried,
    )  # fmt: skip


@router.get("/knowledge/new")
def new_article(request: Request, viewer: CurrentViewer) -> Response:
    require(viewer.actor, "knowledge:write")
    state = FormState(values={n: "" for n in FIELDS})
    state.values.update(language=viewer.lang if viewer.lang in ("ja", "en") else "ja", published="on")
    return _form(request, viewer, state)


@router.post("/knowledge/new")
def create_article(request: Request, session: DB, viewer: PostingViewer, posted: Posted) -> Response:
    require(viewer.actor, "knowledge:write")
    state = read_form(posted, FIELDS)
    actor = viewer.actor.via("ui")
    made = submit(
        state, translator(viewer.lang), viewer.lang,
        lambda: service.create_article(session, actor=actor, data=ArticleCreate.model_validate(_payload(state.values))),
    )  # fmt: skip
    if made is None:
        session.rollback()
        return _form(request, viewer, state, status=422)
    session.commit()
    return with_notice(RedirectResponse("/knowledge", status_code=303), "created")


@router.get("/knowledge/{article_id:int}")
def edit_article(request: Request, session: DB, viewer: CurrentViewer, article_id: int) -> Response:
    require(viewer.actor, "knowledge:read")
    a = service.get_article(session, article_id)
    state = FormState(
        values={
            "title": a.title,
            "body": a.body,
            "language": a.language,
            "tags": ", ".join(a.tags or []),
            "published": "on" if a.published else "",
        }  # fmt: skip
    )
    return _form(request, viewer, state, article_id=a.id, version=a.version)


@router.post("/knowledge/{article_id:int}")
def update_article(request: Request, session: DB, viewer: PostingViewer, posted: Posted, article_id: int) -> Response:
    state = read_form(posted, FIELDS)
    raw = str(posted.get("version", ""))
    version = int(raw) if raw.isdigit() else None
    actor = viewer.actor.via("ui")
    updated = submit(
        state, translator(viewer.lang), viewer.lang,
        lambda: service.update_article(
            session, actor=actor, article_id=article_id,
            data=ArticleUpdate.model_validate({**_payload(state.values), "version": version}), expected_version=None,
        ),
    )  # fmt: skip
    if updated is None:
        session.rollback()
        current = service.get_article(session, article_id)
        stale = version is not None and version != current.version
        return _form(
            request, viewer, state, article_id=article_id, version=current.version if stale else version,
            status=409 if stale else 422,
        )  # fmt: skip
    session.commit()
    return with_notice(RedirectResponse("/knowledge", status_code=303), "saved")


def _delete_page(
    request: Request, session: DB, viewer: Viewer, article_id: int, problem: str = "", status: int = 200
) -> Response:
    require(viewer.actor, "knowledge:write")
    article = service.get_article(session, article_id)
    return render(request, "knowledge/delete.html", viewer, status=status, article=article, problem=problem)


@router.get("/knowledge/{article_id:int}/delete")
def delete_confirm(request: Request, session: DB, viewer: CurrentViewer, article_id: int) -> Response:
    """The confirm step: the article's title and what deleting it means, with its version."""
    return _delete_page(request, session, viewer, article_id)


@router.post("/knowledge/{article_id:int}/delete")
def delete_article(request: Request, session: DB, viewer: PostingViewer, posted: Posted, article_id: int) -> Response:
    """Delete for good (audited); the bot's index forgets the article on its next question (its stamp counts the
    published articles). A version older than the article's is refused (409) with the confirm page again."""
    raw = str(posted.get("version", ""))
    try:
        if not raw.isdigit():
            raise ValidationError("the form sent no article version; open the article again", field="version")
        service.delete_article(
            session, actor=viewer.actor.via("ui"), article_id=article_id, expected_version=None,
            version=int(raw),
        )  # fmt: skip
    except KizunaError as exc:
        session.rollback()
        if exc.status_code == 404:
            raise
        problem = translate_error(translator(viewer.lang), viewer.lang, exc)
        return _delete_page(request, session, viewer, article_id, problem=problem, status=exc.status_code)
    session.commit()
    return with_notice(RedirectResponse("/knowledge", status_code=303), "deleted")


@router.get("/faq/{article_id:int}")
def public_article(request: Request, session: DB, article_id: int) -> Response:
    """A published article for anyone (the link under the bot's answer); no sign-in."""
    article = service.get_article(session, article_id)
    if not article.published:
        raise NotFound(f"article {article_id} not found")
    return render(request, "knowledge/public.html", None, article=article)
