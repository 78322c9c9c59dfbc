"""The email channel: the mail itself (Message-ID from the delivery key, HTML and text parts, RFC 8058 one-click
unsubscribe headers, the legal footer, tracking), optional DKIM signing that covers both List-Unsubscribe headers,
and what a batch of mails shares. SMTP itself lives in ``smtp.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dkim
from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna import keys
from kizuna.config import get_settings
from kizuna.errors import ValidationError
from kizuna.messaging import channels, footer, mime, settings, smtp, tracking, unsubscribe
from kizuna.messaging.channels import Outgoing, PermanentFailure, TemporaryFailure
from kizuna.messaging.models import Message

CHANNEL = "email"
SECURITIES = ("starttls", "ssl", "none")
# Headers a message's content may set (``content["headers"]``): only these, so no content adds others.
THREAD_HEADERS = ("In-Reply-To", "References")
# Headers DKIM signs: what a forwarder must not change, including both one-click unsubscribe headers (RFC 8058
# requires them signed, so that nobody can point List-Unsubscribe at another address).
DKIM_HEADERS = [
    b"From", b"To", b"Subject", b"Date", b"Message-ID", b"MIME-Version", b"Content-Type", b"Reply-To",
    b"List-Unsubscribe", b"List-Unsubscribe-Post",
]  # fmt: skip


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    private_key: bytes

    def sign(self, raw: bytes) -> bytes:
        # Headers named but absent are signed as absent: nobody can add a Reply-To to a signed mail either.
        signature = dkim.sign(
            raw,
            self.selector.encode(),
            self.domain.encode(),
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=DKIM_HEADERS,
            linesep=b"\r\n",
        )
        return signature + raw


def dkim_key(session: Session) -> DkimKey | None:
    values = settings.load(session, CHANNEL)
    key = settings.secret(session, CHANNEL, "dkim_private_key")
    if not (values.get("dkim_domain") and values.get("dkim_selector") and key):
        return None
    return DkimKey(domain=values["dkim_domain"], selector=values["dkim_selector"], private_key=key.encode())


class EmailChannel:
    name = CHANNEL

    def addresses(self, session: Session, customer_ids: list[int]) -> dict[int, str]:
        from kizuna.customers.models import Customer

        found: dict[int, str] = {}
        ids = sorted(set(customer_ids))
        for start in range(0, len(ids), 5000):
            query = select(Customer.id, Customer.email).where(
                Customer.id.in_(ids[start : start + 5000]), Customer.email.is_not(None), Customer.email != ""
            )
            found.update({cid: email.strip() for cid, email in session.execute(query)})
        return found

    def connect(self, session: Any = None) -> Any:
        from kizuna.db import new_session

        if session is not None:
            return smtp.connection(smtp.smtp_config(session))
        with new_session() as own:
            config = smtp.smtp_config(own)
        return smtp.connection(config)


channels.register(EmailChannel())


class EmailBatch:
    """What one batch of mails shares: SMTP, sender identity, DKIM key and the public base URL, read once."""

    def __init__(self, session: Session) -> None:
        values = settings.load(session, CHANNEL)
        self.identity = footer.SenderIdentity.of(values)
        self.server_problem: str | None = None
        try:
            self.server = smtp.smtp_config(session)
        except ValidationError as exc:  # retried like an outage: the setting is fixed without touching messages
            self.server, self.server_problem = None, exc.message
        self.dkim = dkim_key(session)
        self.public_url = get_settings().public_url.rstrip("/")
        self.track = values.get("tracking", True) is not False
        self._links: dict[int, str] = {}
        self._sign_unsubscribe = keys.signer(unsubscribe.PURPOSE)
        self._sign_tracking = keys.signer(tracking.PURPOSE)
        self._from = mime.address(self.identity.name, self.identity.address)

    def unsubscribe_link(self, message: Message) -> str:
        link = self._links.get(message.id)
        if link is None:
            link = self._links[message.id] = unsubscribe.url(self.public_url, message.id, self._sign_unsubscribe)
        return link

    def refusal(self, message: Message) -> PermanentFailure | None:
        """Why this mail may not go out at all, checked before anything is sent."""
        missing = self.identity.missing(message.kind)
        if missing:
            return PermanentFailure(
                f"the sender identity is not configured: set {', '.join(missing)} on the email settings page",
                reason="no_sender_identity",
            )
        if message.kind == "marketing" and not self.public_url:
            return PermanentFailure(
                "KIZUNA_PUBLIC_URL is not set: a marketing mail needs an unsubscribe link", reason="no_public_url"
            )
        return None

    def variables(self, message: Message) -> dict[str, Any]:
        """What templates see of the sender and the unsubscribe link."""
        out: dict[str, Any] = {"sender": self.identity.variables()}
        if message.kind == "marketing" and self.public_url:
            out["unsubscribe_url"] = self.unsubscribe_link(message)
        return out

    def finish(self, message: Message, address: str, content: dict[str, Any], locale: str | None) -> dict[str, Any]:
        """The mail as bytes: footer and tracking added, headers set, signed when a DKIM key is configured."""
        html, text = content.get("html", ""), content.get("text", "")
        own = content.get("sender") or {}
        headers: list[tuple[str, str]] = []
        reply_to = own.get("reply_to") or self.identity.reply_to
        if reply_to:
            headers.append(("Reply-To", reply_to))
        # Threading headers a reply carries (an inquiry's answer names the customer's mail it answers).
        threading = (message.content or {}).get("headers") or {}
        headers += [(name, str(threading[name])) for name in THREAD_HEADERS if threading.get(name)]
        if message.kind == "marketing":
            link = self.unsubscribe_link(message)
            foot_text, foot_html = footer.footer(self.identity, link, locale)
            text = text.rstrip("\n") + foot_text
            html = footer.append_html(html, foot_html) if html else html
            headers.append(("List-Unsubscribe", f"<{link}>"))
            headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        if html and self.track and self.public_url:
            html = tracking.track_links(html, message_id=message.id, base_url=self.public_url, sign=self._sign_tracking)
        sender = self._from
        if own.get("from_name") or own.get("from_address"):
            sender = mime.address(
                own.get("from_name") or self.identity.name, own.get("from_address") or self.identity.address
            )
        raw = mime.build(
            sender=sender,
            to=smtp.wire_address(address)[0],
            subject=content.get("subject", ""),
            text=text,
            html=html,
            message_id=message_id(message.delivery_key, self.identity.domain),
            headers=headers,
        )
        if self.dkim is not None:
            raw = self.dkim.sign(raw)
        return {"envelope_from": self.identity.address, "raw": raw}

    def connect(self) -> Any:
        return smtp.connection(self.server, self.server_problem)


def message_id(delivery_key: str, domain: str) -> str:
    """``<delivery_key@domain>``: the same on every attempt, so a repeat is recognisable."""
    return f"<{delivery_key}@{domain or 'kizuna.invalid'}>"


def preview_extras(session: Session, *, kind: str, locale: Any) -> tuple[dict[str, Any], Any]:
    """What a preview's templates see of the sender, and a function adding the footer to the rendered parts."""
    batch = EmailBatch(session)
    link = f"{batch.public_url or 'https://example.invalid'}/u/preview"
    extras: dict[str, Any] = {"sender": batch.identity.variables()}
    if kind == "marketing":
        extras["unsubscribe_url"] = link
    shown_locale = locale if isinstance(locale, str) else None

    def finish(rendered: dict[str, Any]) -> dict[str, Any]:
        if kind != "marketing":
            return rendered
        foot_text, foot_html = footer.footer(batch.identity, link, shown_locale)
        html = rendered.get("html", "")
        return {
            **rendered,
            "text": rendered.get("text", "").rstrip("\n") + foot_text,
            "html": footer.append_html(html, foot_html) if html else html,
        }

    return extras, finish


TEST_CONTENT = {
    "subject": "Kizuna test mail / テストメール",
    "text": "This is a test mail from Kizuna. / Kizuna からのテストメールです。\n",
}


def send_test(
    session: Session, *, actor: Any, to: str, template_id: int | None = None, customer_id: int | None = None
) -> str:
    """Render a template (or a short test text) for a customer and send it to ``to`` at once, outside the queue:
    a check of the SMTP settings, the sender identity and DKIM. Nothing is recorded on a message; tracking is
    off. Returns where it went."""
    import uuid

    from kizuna.auth.permissions import require
    from kizuna.messaging import service, templates
    from kizuna.messaging.models import Template

    require(actor, "templates:write")
    batch = EmailBatch(session)
    batch.track = False
    template = session.get(Template, template_id) if template_id is not None else None
    if template_id is not None and template is None:
        raise ValidationError(f"template {template_id} not found", field="template")
    kind = template.kind if template else "service"
    probe = Message(id=0, kind=kind, delivery_key=f"test{uuid.uuid4().hex}", channel=CHANNEL)
    refusal = batch.refusal(probe)
    if refusal is not None:
        raise ValidationError(str(refusal), field="settings")
    if customer_id is None:
        customer_id = service.default_preview_customer(session)
    values = templates.customer_variables(session, [customer_id]).get(customer_id) if customer_id else None
    variables = {**(values or templates.sample_variables()), "context": {}, **batch.variables(probe)}
    variables["recommendations"] = templates.recommendations_for([])
    from kizuna.surveys.links import sample_function

    variables["nps_links"] = sample_function()
    try:
        content = templates.render(templates.Parts.of(template or TEST_CONTENT), variables)
    except templates.RenderError as exc:
        raise ValidationError(exc.message, field=exc.field) from exc
    content["subject"] = f"[TEST] {content['subject']}"
    rendered = batch.finish(probe, to, content, None)
    outgoing = Outgoing(0, probe.delivery_key, customer_id, kind, to, rendered)
    with batch.connect() as connection:
        try:
            connection.send(outgoing)
        except (TemporaryFailure, PermanentFailure) as exc:
            raise ValidationError(f"not sent: {exc}", field="smtp") from exc
    server = batch.server.shown if batch.server else "?"
    return f"{to} via {server}, Message-ID {message_id(probe.delivery_key, batch.identity.domain)}"
