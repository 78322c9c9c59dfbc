"""``GET /api/v1/segments/{id}/audience?platform=google|meta``: a segment's audience file for an ad platform."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from kizuna.audiences.service import MEDIA_TYPE, write_audience
from kizuna.web.api import spooled_download
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/segments", tags=["segments"])


@router.get(
    "/{segment_id}/audience",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def audience(
    segment_id: int,
    session: DB,
    actor: APIActor,
    platform: Literal["google", "meta"] = Query(description="google (Customer Match) or meta (Custom Audiences)."),
) -> StreamingResponse:
    """The segment's members with advertising consent in force, hashed as the platform documents (CSV).

    Each customer in the file gets a third-party provision record; the export is audited. Headers
    ``X-Kizuna-Members``, ``X-Kizuna-Rows``, ``X-Kizuna-Without-Consent`` say who was left out and why.
    """
    return spooled_download(
        session,
        lambda out: write_audience(session, actor=actor, segment_id=segment_id, platform=platform, out=out),
        media_type=MEDIA_TYPE,
        headers=lambda result: {
            "Content-Disposition": f'attachment; filename="{result.file_name}"',
            "X-Kizuna-Members": str(result.members),
            "X-Kizuna-Rows": str(result.rows),
            "X-Kizuna-Without-Consent": str(result.without_consent),
            "X-Kizuna-Without-Identifier": str(result.without_identifier),
        },
    )
