"""``/api/v1/campaigns``: create, edit, schedule or send now, pause, resume, cancel, and the measured results."""

from __future__ import annotations

from fastapi import APIRouter

from kizuna.campaigns import service
from kizuna.campaigns.schemas import CampaignCreate, CampaignRead, CampaignStats, CampaignUpdate, ScheduleRequest
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


@router.get("", response_model=list[CampaignRead])
def list_campaigns(session: DB, actor: APIActor) -> list[CampaignRead]:
    return [CampaignRead.model_validate(c) for c in service.list_campaigns(session, actor=actor)]


@router.post("", response_model=CampaignRead, status_code=201)
def create_campaign(session: DB, actor: APIActor, data: CampaignCreate) -> CampaignRead:
    """A draft: nothing is sent until it is scheduled."""
    campaign = service.create_campaign(session, actor=actor, data=data)
    session.commit()
    return CampaignRead.model_validate(campaign)


@router.get("/{campaign_id}", response_model=CampaignRead)
def get_campaign(session: DB, actor: APIActor, campaign_id: int) -> CampaignRead:
    return CampaignRead.model_validate(service.get_campaign(session, campaign_id, actor=actor))


@router.patch("/{campaign_id}", response_model=CampaignRead)
def update_campaign(session: DB, actor: APIActor, campaign_id: int, data: CampaignUpdate) -> CampaignRead:
    campaign = service.update_campaign(session, campaign_id, actor=actor, data=data)
    session.commit()
    return CampaignRead.model_validate(campaign)


@router.post("/{campaign_id}/schedule", response_model=CampaignRead)
def schedule(session: DB, actor: APIActor, campaign_id: int, body: ScheduleRequest) -> CampaignRead:
    """Send at ``at``, or now when it is empty: the worker fixes the audience and sends within seconds."""
    campaign = service.schedule(session, campaign_id, actor=actor, at=body.at)
    session.commit()
    return CampaignRead.model_validate(campaign)


@router.post("/{campaign_id}/pause", response_model=CampaignRead)
def pause(session: DB, actor: APIActor, campaign_id: int) -> CampaignRead:
    campaign = service.pause(session, campaign_id, actor=actor)
    session.commit()
    return CampaignRead.model_validate(campaign)


@router.post("/{campaign_id}/resume", response_model=CampaignRead)
def resume(session: DB, actor: APIActor, campaign_id: int) -> CampaignRead:
    campaign = service.resume(session, campaign_id, actor=actor)
    session.commit()
    return CampaignRead.model_validate(campaign)


@router.post("/{campaign_id}/cancel", response_model=CampaignRead)
def cancel(session: DB, actor: APIActor, campaign_id: int) -> CampaignRead:
    campaign = service.cancel(session, campaign_id, actor=actor)
    session.commit()
    return CampaignRead.model_validate(campaign)


@router.get("/{campaign_id}/stats", response_model=CampaignStats)
def stats(session: DB, actor: APIActor, campaign_id: int) -> CampaignStats:
    """Per variant and in total: sent, skipped (with reasons), opened, clicked, unsubscribed, bounced, complained,
    converted; the complaint rate with its warning; the A/B test's result (provisional until decided)."""
    return service.stats(session, campaign_id, actor=actor)
