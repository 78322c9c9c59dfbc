"""``/api/v1/line`` (settings, quota, LINE's webhook, links) and ``/api/v1/webhooks`` (endpoints, allow-list)."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request, Response

from kizuna.auth.permissions import require
from kizuna.db import new_session
from kizuna.messaging import line, line_inbound, linking, settings, webhook_admin
from kizuna.messaging.line_schemas import (
    AccountLinkRead,
    AccountLinkRequest,
    AllowCreate,
    AllowRead,
    EndpointCreate,
    EndpointRead,
    EndpointUpdate,
    EndpointWithSecret,
    LineSettingsRead,
    LineSettingsUpdate,
    LinkOfferRead,
    LinkRequest,
    LinkTokenRead,
    LinkTokenRequest,
    QuotaRead,
    UrlSecretRead,
    UrlSecretRequest,
    WebhookResult,
)
from kizuna.messaging.schemas import DeliveryRulesIn, DeliveryRulesRead
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/line", tags=["line"])
webhooks = APIRouter(prefix="/webhooks", tags=["webhooks"])
WEBHOOK_PATH = "/api/v1/line/webhook"


def settings_read(view: line.SettingsView) -> LineSettingsRead:
    return LineSettingsRead(**view.__dict__, webhook_path=WEBHOOK_PATH)


@router.post("/webhook", response_model=WebhookResult)
async def line_webhook(request: Request) -> WebhookResult:
    """LINE's webhook (give LINE this URL). Verified by ``x-line-signature``; no API token. Each event once."""
    body = await request.body()
    signature = request.headers.get(line_inbound.SIGNATURE_HEADER)

    def work() -> dict[str, int]:
        session = new_session(request.app.state.engine)
        try:
            handled = line_inbound.handle_delivery(session, body=body, signature_header=signature)
            session.commit()
            return handled
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    return WebhookResult(handled=await anyio.to_thread.run_sync(work))


@router.get("/settings", response_model=LineSettingsRead)
def read_settings(session: DB, actor: APIActor) -> LineSettingsRead:
    """The LINE channel's settings; the token and secret are never shown, only whether they are set."""
    return settings_read(line.view_settings(session, actor=actor))


@router.put("/settings", response_model=LineSettingsRead)
def save_settings(session: DB, actor: APIActor, data: LineSettingsUpdate) -> LineSettingsRead:
    """Save the fields given (omitted ones stay, "" clears); the token and secret are stored encrypted."""
    view = line.save_settings(session, actor=actor, **data.model_dump(exclude_unset=True))
    session.commit()
    return settings_read(view)


@router.get("/rules", response_model=DeliveryRulesRead)
def read_rules(session: DB, actor: APIActor) -> DeliveryRulesRead:
    """LINE's frequency cap (marketing pushes per customer per window) and quiet hours."""
    return DeliveryRulesRead(**settings.read_rules(session, actor=actor, channel="line"))


@router.put("/rules", response_model=DeliveryRulesRead)
def save_rules(session: DB, actor: APIActor, data: DeliveryRulesIn) -> DeliveryRulesRead:
    """Set LINE's frequency cap and quiet hours; a push due in quiet hours waits until they end."""
    settings.save_rules(session, actor=actor, channel="line", data=data)
    session.commit()
    return DeliveryRulesRead(**settings.read_rules(session, actor=actor, channel="line"))


@router.get("/quota", response_model=QuotaRead)
def read_quota(session: DB, actor: APIActor) -> QuotaRead:
    """This month's message quota and consumption, asked of LINE now."""
    return QuotaRead(**line.quota(session, actor=actor))


@router.post("/links", response_model=LinkOfferRead, status_code=201)
def offer_link(request: Request, session: DB, actor: APIActor, data: LinkRequest) -> LinkOfferRead:
    """A signed link for the customer to link their LINE account (works once, for ``KIZUNA_LINE_LINK_DAYS``)."""
    offer = linking.offer_link(session, actor=actor, customer_id=data.customer_id, base_url=str(request.base_url))
    session.commit()
    return LinkOfferRead(url=offer.url, code=offer.code, expires_at=offer.expires_at)


@router.post("/link-token", response_model=LinkTokenRead)
def link_token(session: DB, actor: APIActor, data: LinkTokenRequest) -> LinkTokenRead:
    """LINE's account-link flow, step 1: a link token for the LINE user, issued by LINE."""
    require(actor, "customers:write")
    return LinkTokenRead(link_token=line.issue_link_token(session, line_user_id=data.line_user_id))


@router.post("/account-link", response_model=AccountLinkRead, status_code=201)
def account_link(session: DB, actor: APIActor, data: AccountLinkRequest) -> AccountLinkRead:
    """Step 2, for a site that knows the customer: where to send the LINE user (LINE's page, with a nonce)."""
    url = linking.start_account_link(session, actor=actor, customer_id=data.customer_id, link_token=data.link_token)
    session.commit()
    return AccountLinkRead(redirect_url=url)


# --- webhooks --------------------------------------------------------------------------------------------


@webhooks.get("/endpoints", response_model=list[EndpointRead])
def list_endpoints(session: DB, actor: APIActor) -> list[EndpointRead]:
    return [EndpointRead.model_validate(e) for e in webhook_admin.list_endpoints(session, actor=actor)]


@webhooks.post("/endpoints", response_model=EndpointWithSecret, status_code=201)
def create_endpoint(session: DB, actor: APIActor, data: EndpointCreate) -> EndpointWithSecret:
    """A receiver for webhook messages; the answer holds its signing secret, shown this once."""
    endpoint, secret = webhook_admin.create_endpoint(session, actor=actor, name=data.name, url=data.url)
    session.commit()
    return EndpointWithSecret(**EndpointRead.model_validate(endpoint).model_dump(), secret=secret)


@webhooks.patch("/endpoints/{endpoint_id}", response_model=EndpointRead)
def update_endpoint(session: DB, actor: APIActor, endpoint_id: int, data: EndpointUpdate) -> EndpointRead:
    endpoint = webhook_admin.update_endpoint(
        session, actor=actor, endpoint_id=endpoint_id, url=data.url, active=data.active
    )
    session.commit()
    return EndpointRead.model_validate(endpoint)


@webhooks.post("/endpoints/{endpoint_id}/rotate", response_model=EndpointWithSecret)
def rotate_endpoint(session: DB, actor: APIActor, endpoint_id: int) -> EndpointWithSecret:
    """A new signing secret, shown this once; the old one stops signing at once."""
    endpoint, secret = webhook_admin.rotate_secret(session, actor=actor, endpoint_id=endpoint_id)
    session.commit()
    return EndpointWithSecret(**EndpointRead.model_validate(endpoint).model_dump(), secret=secret)


@webhooks.delete("/endpoints/{endpoint_id}", status_code=204)
def delete_endpoint(session: DB, actor: APIActor, endpoint_id: int) -> Response:
    webhook_admin.delete_endpoint(session, actor=actor, endpoint_id=endpoint_id)
    session.commit()
    return Response(status_code=204)


@webhooks.post("/url-secret", response_model=UrlSecretRead)
def url_secret(actor: APIActor, data: UrlSecretRequest) -> UrlSecretRead:
    """The secret that signs webhooks sent to a URL without an endpoint (derived from KIZUNA_SECRET_KEY)."""
    return UrlSecretRead(url=data.url, secret=webhook_admin.secret_for_url(actor=actor, url=data.url))


@webhooks.get("/allowlist", response_model=list[AllowRead])
def list_allowed(session: DB, actor: APIActor) -> list[AllowRead]:
    return [AllowRead.model_validate(a) for a in webhook_admin.list_allowed(session, actor=actor)]


@webhooks.post("/allowlist", response_model=AllowRead, status_code=201)
def add_allowed(session: DB, actor: APIActor, data: AllowCreate) -> AllowRead:
    """Let webhooks reach a private host, address or network (an intranet receiver)."""
    row = webhook_admin.add_allowed(session, actor=actor, entry=data.entry, note=data.note)
    session.commit()
    return AllowRead.model_validate(row)


@webhooks.delete("/allowlist/{allow_id}", status_code=204)
def remove_allowed(session: DB, actor: APIActor, allow_id: int) -> Response:
    webhook_admin.remove_allowed(session, actor=actor, allow_id=allow_id)
    session.commit()
    return Response(status_code=204)
