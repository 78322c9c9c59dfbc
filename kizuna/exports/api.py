from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from kizuna.exports.service import MEDIA_TYPES, write_export
from kizuna.web.api import filter_params, spooled_download
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/exports", tags=["exports"])


@router.get(
    "/{kind}.{fmt}",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
)
def export_list(
    kind: str, fmt: Literal["csv", "parquet"], request: Request, session: DB, actor: APIActor
) -> StreamingResponse:
    """Any list (customers, companies, products, orders, events) as CSV or Parquet, with the list's filters.

    CSV cells that a spreadsheet would run as a formula are neutralised; the export is audited.
    """
    params = dict(filter_params(request))
    if "sort" in request.query_params:
        params["sort"] = request.query_params["sort"]
    return spooled_download(
        session,
        lambda out: write_export(session, actor=actor, kind=kind, params=params, fmt=fmt, out=out),
        media_type=MEDIA_TYPES[fmt],
        headers=lambda _: {"Content-Disposition": f'attachment; filename="{kind}.{fmt}"'},
    )
