"""Admin actions on webhooks: endpoints (a name, a URL and a secret shown once) and the address allow-list."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.db import utcnow
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.keys import encrypt
from kizuna.messaging import ssrf
from kizuna.messaging.webhook import allowlist, url_secret
from kizuna.messaging.webhook_models import WebhookAllow, WebhookEndpoint

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
PERMISSION = "channels:manage"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def list_endpoints(session: Session, *, actor: Actor) -> list[WebhookEndpoint]:
    require(actor, PERMISSION)
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.name)))


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return endpoint


def check_url(session: Session, url: str) -> str:
    """The URL, checked now as a send would check it: a private address is refused at save time."""
    ssrf.check(url, allowlist(session))
    return url.strip()


def create_endpoint(session: Session, *, actor: Actor, name: str, url: str) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret, which is shown this once (it is stored encrypted)."""
    require(actor, PERMISSION)
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise ValidationError(
            "an endpoint name is 1-100 lower-case letters, digits, '-', '_' or '.'",
            field="name",
            key="error.webhook_name",
        )
    if session.scalar(select(WebhookEndpoint.id).where(WebhookEndpoint.name == name)):
        raise Conflict(f"a webhook endpoint named {name} exists already", field="name")
    url = check_url(session, url)
    secret = new_secret()
    endpoint = WebhookEndpoint(name=name, url=url, secret=encrypt(secret), active=True, created_by=actor.label)
    session.add(endpoint)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="webhook.endpoint.create",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        details={"name": name, "url": url},
    )
    return endpoint, secret


def update_endpoint(
    session: Session, *, actor: Actor, endpoint_id: int, url: str | None = None, active: bool | None = None
) -> WebhookEndpoint:
    require(actor, PERMISSION)
    endpoint = get_endpoint(session, endpoint_id)
    changes: dict[str, object] = {}
    if url is not None and url.strip() != endpoint.url:
        endpoint.url = check_url(session, url)
        changes["url"] = endpoint.url
    if active is not None and active != endpoint.active:
        endpoint.active = active
        changes["active"] = active
    if changes:
        audit.record(
            session,
            actor=actor,
            action="webhook.endpoint.update",
            entity_type="webhook_endpoint",
            entity_id=endpoint.id,
            details=changes,
        )
    return endpoint


def rotate_secret(session: Session, *, actor: Actor, endpoint_id: int) -> tuple[WebhookEndpoint, str]:
    """A new signing secret for the endpoint, shown this once; the old one stops signing at once."""
    require(actor, PERMISSION)
    endpoint = get_endpoint(session, endpoint_id)
    secret = new_secret()
    endpoint.secret = encrypt(secret)
    endpoint.rotated_at = utcnow()
    audit.record(
        session, actor=actor, action="webhook.endpoint.rotate", entity_type="webhook_endpoint", entity_id=endpoint.id
    )
    return endpoint, secret


def delete_endpoint(session: Session, *, actor: Actor, endpoint_id: int) -> None:
    require(actor, PERMISSION)
    endpoint = get_endpoint(session, endpoint_id)
    audit.record(
        session,
        actor=actor,
        action="webhook.endpoint.delete",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        details={"name": endpoint.name},
    )
    session.delete(endpoint)


def secret_for_url(*, actor: Actor, url: str) -> str:
    """The derived secret that signs webhooks sent to ``url`` without an endpoint (for the receiver's admin)."""
    require(actor, PERMISSION)
    ssrf.split(url)
    return url_secret(url)


# --- allow-list ------------------------------------------------------------------------------------------


def list_allowed(session: Session, *, actor: Actor) -> list[WebhookAllow]:
    require(actor, PERMISSION)
    return list(session.scalars(select(WebhookAllow).order_by(WebhookAllow.entry)))


def add_allowed(session: Session, *, actor: Actor, entry: str, note: str = "") -> WebhookAllow:
    """Allow webhooks to a host name, an address or a network (``10.0.0.0/8``) that is not public."""
    require(actor, PERMISSION)
    network = ssrf.parse_network(entry)
    stored = str(network) if network is not None else ssrf.check_host_entry(entry)
    if network is not None and network.prefixlen == 0:
        raise ValidationError("allowing every address would switch the protection off; name a network", field="entry")
    if session.scalar(select(WebhookAllow.id).where(WebhookAllow.entry == stored)):
        raise Conflict(f"{stored} is allow-listed already", field="entry")
    row = WebhookAllow(entry=stored, note=note.strip()[:200], created_by=actor.label)
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="webhook.allow.add",
        entity_type="webhook_allow",
        entity_id=row.id,
        details={"entry": stored, "note": row.note},
    )
    return row


def remove_allowed(session: Session, *, actor: Actor, allow_id: int) -> None:
    require(actor, PERMISSION)
    row = session.get(WebhookAllow, allow_id)
    if row is None:
        raise NotFound(f"allow-list entry {allow_id} not found")
    audit.record(
        session,
        actor=actor,
        action="webhook.allow.remove",
        entity_type="webhook_allow",
        entity_id=row.id,
        details={"entry": row.entry},
    )
    session.delete(row)
