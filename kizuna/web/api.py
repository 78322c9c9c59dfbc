"""Helpers shared by the JSON API routers: list parameters, paging, ETags."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Annotated, Any, TypeVar

from fastapi import Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import Session

from kizuna.config import get_settings
from kizuna.errors import PreconditionRequired, ValidationError
from kizuna.listing import FilterSet, list_page
from kizuna.web.deps import etag, expected_version

PAGING = {"sort", "cursor", "limit"}

Sort = Annotated[str | None, Query(description="Field to sort by; prefix '-' for descending.")]
Cursor = Annotated[str | None, Query(description="next_cursor from the previous page.")]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Q = Annotated[str | None, Query(description="Free-text search.")]


def filter_params(request: Request) -> dict[str, Any]:
    """Every query parameter but paging is a filter: ``field=value`` or ``field__op=value``."""
    params: dict[str, Any] = {}
    for key in request.query_params:
        if key in PAGING:
            continue
        values = request.query_params.getlist(key)
        if len(values) > 1:
            raise ValidationError(f"filter '{key}' given twice; use {key.split('__')[0]}__in=a,b", field=key)
        params[key] = values[0]
    return params


def page_of(
    session: Session,
    filterset: FilterSet,
    query: Select[Any],
    request: Request,
    *,
    schema: type[BaseModel],
    sort: str | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    limit = min(limit, get_settings().page_size_max)
    rows, next_cursor = list_page(
        session, filterset, query, filter_params(request), sort=sort, cursor=cursor, limit=limit
    )
    return {"items": [schema.model_validate(r) for r in rows], "next_cursor": next_cursor}


def with_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def require_precondition(if_match: str | None, body_version: int | None) -> int | None:
    """Writes must say which version they change: ``If-Match`` header (412 on mismatch) or ``version`` (409)."""
    if if_match is None and body_version is None:
        raise PreconditionRequired(
            "send If-Match: <ETag from your GET> or a 'version' field, so a concurrent change is not overwritten"
        )
    return expected_version(if_match)


def require_if_match(if_match: str | None) -> int | None:
    """Deletes must name the version they remove with ``If-Match`` (428 without it, 412 when stale).

    ``If-Match: *`` is an explicit "whatever the version" and is accepted.
    """
    if if_match is None:
        raise PreconditionRequired("send If-Match: <ETag from your GET> (or *), so a record changed meanwhile is kept")
    return expected_version(if_match)


T = TypeVar("T")
# A download is written in memory up to this size, then on disk, before its first byte is sent.
SPOOL_MEMORY = 32 * 1024 * 1024


def spooled_download(
    session: Session, write: Callable[[IO[bytes]], T], *, media_type: str, headers: Callable[[T], dict[str, str]]
) -> StreamingResponse:
    """A file written whole, with what writing it recorded (audit, provision records) committed, then streamed.

    Writing before the first byte means an error is still an error answer, never a truncated file with a 200; the
    spool is closed when the response ends or when writing fails."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 - closed by chunks() or below
    try:
        result = write(spool)
        session.commit()
    except BaseException:
        spool.close()
        raise
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        try:
            while data := spool.read(1 << 16):
                yield data
        finally:
            spool.close()

    return StreamingResponse(chunks(), media_type=media_type, headers=headers(result))
