"""The email channel: SMTP (``KIZUNA_SMTP_URL`` or the server saved on the settings page), the mail itself
(Message-ID from the delivery key, HTML and text parts, RFC 8058 one-click unsubscribe headers, the legal footer,
tracking) and optional DKIM signing that covers both List-Unsubscribe headers.

The SMTP answer decides what happens to a message: 2xx accepted (the sender records it at once), 4xx and
connection trouble temporary (retried with back-off), 5xx permanent (failed, with the server's words).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import dkim
from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.config import get_settings
from kizuna.errors import ValidationError
from kizuna.messaging import channels, footer, mime, settings, tracking, unsubscribe
from kizuna.messaging.channels import Outgoing, PermanentFailure, TemporaryFailure
from kizuna.messaging.models import Message

CHANNEL = "email"
SECURITIES = ("starttls", "ssl", "none")
# Headers DKIM signs: what a forwarder must not change, including both one-click unsubscribe headers (RFC 8058
# requires them signed, so that nobody can point List-Unsubscribe at another address).
DKIM_HEADERS = [
    b"From", b"To", b"Subject", b"Date", b"Message-ID", b"MIME-Version", b"Content-Type", b"Reply-To",
    b"List-Unsubscribe", b"List-Unsubscribe-Post",
]  # fmt: skip


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str = "none"  # starttls | ssl | none
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 30.0) -> SmtpConfig:
        """``smtp://user:pass@host:587?starttls=1``, ``smtps://user:pass@host:465`` or ``smtp://host:25``."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValidationError(
                f"KIZUNA_SMTP_URL must look like smtp://user:pass@host:587?starttls=1 or smtps://host:465, "
                f"not {parts.scheme or '(no scheme)'}://...",
                field="smtp_url",
            )
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.scheme == "smtps":
            security = "ssl"
        elif query.get("starttls", "0").lower() in ("1", "true", "yes"):
            security = "starttls"
        else:
            security = "none"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if security == "ssl" else 587 if security == "starttls" else 25),
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=float(query.get("timeout", timeout)),
        )

    @property
    def shown(self) -> str:
        """Where mail goes, without the password."""
        who = f"{self.username}@" if self.username else ""
        return f"{self.security} {who}{self.host}:{self.port}"


def smtp_config(session: Session) -> SmtpConfig | None:
    """The server saved on the settings page, else ``KIZUNA_SMTP_URL``; None when neither is configured."""
    values = settings.load(session, CHANNEL)
    timeout = get_settings().smtp_timeout_seconds
    if values.get("smtp_host"):
        security = values.get("smtp_security") or "starttls"
        default_port = 465 if security == "ssl" else 587 if security == "starttls" else 25
        return SmtpConfig(
            host=str(values["smtp_host"]),
            port=int(values.get("smtp_port") or default_port),
            security=security,
            username=values.get("smtp_username") or None,
            password=settings.secret(session, CHANNEL, "smtp_password"),
            timeout=timeout,
        )
    url = get_settings().smtp_url
    return SmtpConfig.from_url(url, timeout=timeout) if url else None


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


class SmtpConnection:
    """One SMTP session for a batch, opened at the first send; once the server cannot be reached, every later
    send of the batch fails the same way at once instead of trying again per message."""

    def __init__(self, config: SmtpConfig | None) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None
        self._down: TemporaryFailure | None = None

    def _open(self) -> smtplib.SMTP:
        config = self.config
        if config is None:
            raise TemporaryFailure(
                "no SMTP server is configured (KIZUNA_SMTP_URL or the email settings page)", reason="no_smtp_server"
            )
        try:
            if config.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=config.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
                if config.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
            if config.username:
                smtp.login(config.username, config.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise TemporaryFailure(
                f"{config.shown} refused the login: {exc.smtp_code} {_text(exc.smtp_error)}", reason="smtp_login"
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryFailure(
                f"cannot reach the SMTP server {config.shown}: {exc}", reason="smtp_unreachable"
            ) from exc
        return smtp

    def send(self, outgoing: Outgoing) -> dict[str, Any]:
        if self._down is not None:
            raise self._down
        if self._smtp is None:
            try:
                self._smtp = self._open()
            except TemporaryFailure as exc:
                self._down = exc
                raise
        rendered = outgoing.rendered
        try:
            self._smtp.sendmail(rendered["envelope_from"], [outgoing.address], rendered["raw"])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _answer(code, text, "recipient refused") from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, 421 closing
            if exc.smtp_code == 421:
                self._drop()
            raise _answer(exc.smtp_code, exc.smtp_error, "refused") from exc
        except (smtplib.SMTPException, OSError) as exc:  # disconnected, timed out, reset
            self._drop()
            raise TemporaryFailure(
                f"SMTP connection lost: {type(exc).__name__}: {exc}", reason="smtp_disconnected"
            ) from exc
        return {"smtp": self.config.shown if self.config else ""}

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with suppress(OSError):
                smtp.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _answer(code: int, text: bytes | str, what: str) -> TemporaryFailure | PermanentFailure:
    detail = f"SMTP {what}: {code} {_text(text)}"[:1000]
    if 400 <= code < 500:
        return TemporaryFailure(detail, reason=f"smtp_{code}")
    return PermanentFailure(detail, reason=f"smtp_{code}")


@contextmanager
def _connection(config: SmtpConfig | None) -> Iterator[SmtpConnection]:
    connection = SmtpConnection(config)
    try:
        yield connection
    finally:
        connection.close()


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

    def connect(self) -> Any:
        from kizuna.db import new_session

        with new_session() as session:
            config = smtp_config(session)
        return _connection(config)


channels.register(EmailChannel())


class EmailBatch:
    """What one batch of mails shares: SMTP, sender identity, DKIM key and the public base URL, read once."""

    def __init__(self, session: Session) -> None:
        values = settings.load(session, CHANNEL)
        self.identity = footer.SenderIdentity.of(values)
        self.smtp = smtp_config(session)
        self.dkim = dkim_key(session)
        self.public_url = get_settings().public_url.rstrip("/")
        self.track = values.get("tracking", True) is not False

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
            out["unsubscribe_url"] = unsubscribe.url(self.public_url, message.id)
        return out

    def finish(self, message: Message, address: str, content: dict[str, Any], locale: str | None) -> dict[str, Any]:
        """The mail as bytes: footer and tracking added, headers set, signed when a DKIM key is configured."""
        html, text = content.get("html", ""), content.get("text", "")
        headers: list[tuple[str, str]] = []
        if self.identity.reply_to:
            headers.append(("Reply-To", self.identity.reply_to))
        if message.kind == "marketing":
            link = unsubscribe.url(self.public_url, message.id)
            foot_text, foot_html = footer.footer(self.identity, link, locale)
            text = text.rstrip("\n") + foot_text
            html = footer.append_html(html, foot_html) if html else html
            headers.append(("List-Unsubscribe", f"<{link}>"))
            headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        if html and self.track and self.public_url:
            html = tracking.track_links(html, message_id=message.id, base_url=self.public_url)
        raw = mime.build(
            sender=mime.address(self.identity.name, self.identity.address),
            to=address,
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
        return _connection(self.smtp)


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
