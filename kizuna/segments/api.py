"""``/api/v1/segments``: segments, a rule's preview, members and entry/exit history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from kizuna.errors import ValidationError
from kizuna.segments import service
from kizuna.segments.schemas import (
    BuildRead,
    HistoryRow,
    MemberRead,
    MembersPage,
    PreviewRead,
    PreviewRequest,
    RefreshRead,
    SegmentCreate,
    SegmentRead,
    SegmentUpdate,
    StaticBuild,
)
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/segments", tags=["segments"])


def _refresh_read(result: service.RefreshResult) -> RefreshRead:
    return RefreshRead(**result.__dict__)


@router.get("", response_model=list[SegmentRead])
def list_segments(session: DB, actor: APIActor) -> list[SegmentRead]:
    return [SegmentRead.model_validate(s) for s in service.list_segments(session, actor=actor)]


@router.post("", response_model=SegmentRead, status_code=201)
def create_segment(session: DB, actor: APIActor, data: SegmentCreate) -> SegmentRead:
    """Create a segment; a dynamic one is refreshed at once, so it has its members when this returns."""
    segment = service.create_segment(session, actor=actor, data=data)
    if segment.kind == "dynamic":
        service.refresh(session, segment.id, actor=actor)
    from kizuna.segments.schedule import ensure_scheduled

    ensure_scheduled(session)
    session.commit()
    return SegmentRead.model_validate(segment)


@router.post("/preview", response_model=PreviewRead)
def preview(session: DB, actor: APIActor, body: PreviewRequest) -> PreviewRead:
    """How many active customers the rule selects now, and the first few, without saving anything."""
    found = service.preview(session, body.rule, actor=actor)
    return PreviewRead(count=found.count, sample=[MemberRead.model_validate(c) for c in found.sample])


@router.get("/{segment_id}", response_model=SegmentRead)
def get_segment(session: DB, actor: APIActor, segment_id: int) -> SegmentRead:
    return SegmentRead.model_validate(service.get_segment(session, segment_id, actor=actor))


@router.patch("/{segment_id}", response_model=SegmentRead)
def update_segment(session: DB, actor: APIActor, segment_id: int, data: SegmentUpdate) -> SegmentRead:
    segment = service.update_segment(session, segment_id, actor=actor, data=data)
    session.commit()
    return SegmentRead.model_validate(segment)


@router.delete("/{segment_id}", status_code=204)
def delete_segment(session: DB, actor: APIActor, segment_id: int) -> Response:
    service.delete_segment(session, segment_id, actor=actor)
    session.commit()
    return Response(status_code=204)


@router.post("/{segment_id}/refresh", response_model=RefreshRead)
def refresh(session: DB, actor: APIActor, segment_id: int, full: bool = False) -> RefreshRead:
    """Refresh now: incremental unless ``full`` (or a full refresh is due today)."""
    result = service.refresh(session, segment_id, actor=actor, full=full or None)
    session.commit()
    return _refresh_read(result)


@router.post("/{segment_id}/members", response_model=BuildRead)
def build_static(session: DB, actor: APIActor, segment_id: int, body: StaticBuild) -> BuildRead:
    """Set a static list's members: from ids, a CSV of ids or e-mails, another segment, or a list filter."""
    given = [n for n in ("customer_ids", "csv", "segment_id", "filter") if getattr(body, n) is not None]
    if len(given) != 1:
        raise ValidationError("give exactly one of customer_ids, csv, segment_id, filter", field="body")
    unmatched: list[str] = []
    if body.customer_ids is not None:
        ids, source = body.customer_ids, {"from": "ids"}
    elif body.csv is not None:
        found = service.resolve_csv(session, body.csv)
        ids, unmatched, source = found.ids, found.unmatched, {"from": "csv", "unmatched": len(found.unmatched)}
    elif body.segment_id is not None:
        ids = service.snapshot_of_segment(session, body.segment_id, actor=actor)
        source = {"from": "segment", "segment_id": body.segment_id}
    else:
        ids, source = service.snapshot_of_filter(body.filter or {}), {"from": "filter", "filter": body.filter}
    result = service.build_static(session, segment_id, actor=actor, customer_ids=ids, source=source)
    session.commit()
    return BuildRead(**result.__dict__, unmatched=unmatched[:100])


@router.get("/{segment_id}/members", response_model=MembersPage)
def members(
    session: DB,
    actor: APIActor,
    segment_id: int,
    after: Annotated[int, Query(ge=0, description="Customer id to continue after (next_after).")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> MembersPage:
    rows, next_after = service.members(session, segment_id, actor=actor, after=after, limit=limit)
    return MembersPage(items=[MemberRead.model_validate(c) for c in rows], next_after=next_after)


@router.get("/{segment_id}/history", response_model=list[HistoryRow])
def history(
    session: DB, actor: APIActor, segment_id: int, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[HistoryRow]:
    """Entries and exits, newest first (one row per stay: entered_at, and exited_at once it ended)."""
    return [
        HistoryRow(customer_id=c.id, full_name=c.full_name, entered_at=m.entered_at, exited_at=m.exited_at)
        for m, c in service.history(session, segment_id, actor=actor, limit=limit)
    ]
