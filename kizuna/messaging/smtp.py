"""SMTP for the email channel: where mail goes (``KIZUNA_SMTP_URL`` or the server saved on the settings page)
and the connections of a batch.

The server's answer decides what happens to a message: 250 accepted (the sender records it at once), 4xx and
connection trouble temporary (retried with back-off), 5xx permanent (failed, with the server's words).

SMTP is a dialogue (MAIL FROM, RCPT TO, DATA, the mail), each line waiting for the server's answer, so a sender
that keeps one connection waits for the server most of the time. A connection can therefore be driven a step at a
time (``start``, ``advance`` when its socket is readable, ``send_body``): the sender keeps a few connections
(``KIZUNA_SMTP_CONNECTIONS``) in different stages and renders the next mails while the server works, and it lets
only one of them hand over a mail at a time, so that at most one accepted mail is ever unrecorded.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import idna
from sqlalchemy.orm import Session

from kizuna.config import get_settings
from kizuna.errors import ValidationError
from kizuna.messaging import settings
from kizuna.messaging.channels import Outgoing, PermanentFailure, SendFailure, TemporaryFailure

# A line starting with "." is sent as ".." (RFC 5321 4.5.2), as smtplib's own data() does.
_LEADING_DOT = re.compile(rb"(?m)^\.")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str = "none"  # starttls | ssl | none
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    # A CA bundle (PEM) to trust instead of the system's: a relay inside the company with its own CA.
    cafile: str | None = None

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
            cafile=query.get("cafile") or None,
        )

    @property
    def shown(self) -> str:
        """Where mail goes, without the password."""
        who = f"{self.username}@" if self.username else ""
        return f"{self.security} {who}{self.host}:{self.port}"


def smtp_config(session: Session) -> SmtpConfig | None:
    """The server saved on the settings page, else ``KIZUNA_SMTP_URL``; None when neither is configured."""
    values = settings.load(session, "email")
    timeout = get_settings().smtp_timeout_seconds
    if values.get("smtp_host"):
        security = values.get("smtp_security") or "starttls"
        default_port = 465 if security == "ssl" else 587 if security == "starttls" else 25
        return SmtpConfig(
            host=str(values["smtp_host"]),
            port=int(values.get("smtp_port") or default_port),
            security=security,
            username=values.get("smtp_username") or None,
            password=settings.secret(session, "email", "smtp_password"),
            timeout=timeout,
        )
    url = get_settings().smtp_url
    return SmtpConfig.from_url(url, timeout=timeout) if url else None


class SmtpConnection:
    """One SMTP session for a batch, opened at the first send; once the server cannot be reached, every later
    send of the batch fails the same way at once instead of trying again per message."""

    def __init__(self, config: SmtpConfig | None, problem: str | None = None) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None
        # A configuration that cannot be used (a malformed KIZUNA_SMTP_URL) fails every send the same way.
        self._down = TemporaryFailure(problem, reason="smtp_config") if problem else None
        self._begun = False
        self._recipient = ""
        # Stepwise sending: the answer awaited next ("mail", "rcpt", "data", "mail_data"), or "body" once the
        # server said 354 and the mail itself may be written; None when idle.
        self.stage: str | None = None

    def _open(self) -> smtplib.SMTP:
        config = self.config
        if config is None:
            raise TemporaryFailure(
                "no SMTP server is configured (KIZUNA_SMTP_URL or the email settings page)", reason="no_smtp_server"
            )
        try:
            if config.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=config.timeout, context=_tls(config)
                )
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
                if config.security == "starttls":
                    smtp.starttls(context=_tls(config))
            if config.username:
                smtp.login(config.username, config.password or "")
            smtp.ehlo_or_helo_if_needed()
        except ssl.SSLCertVerificationError as exc:
            raise TemporaryFailure(
                f"the SMTP server {config.shown} presented a certificate that cannot be trusted "
                f"({exc.verify_message}); give its CA with ?cafile=/path/ca.pem in KIZUNA_SMTP_URL",
                reason="smtp_tls",
            ) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise TemporaryFailure(
                f"{config.shown} refused the login: {exc.smtp_code} {_text(exc.smtp_error)}", reason="smtp_login"
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryFailure(
                f"cannot reach the SMTP server {config.shown}: {exc}", reason="smtp_unreachable"
            ) from exc
        return smtp

    def send(self, outgoing: Outgoing, meanwhile: Callable[[], None] | None = None) -> dict[str, Any]:
        """Send one mail (``rendered``: ``envelope_from`` and ``raw`` bytes); returns on the server's 250."""
        self.begin(outgoing)
        return self.complete(outgoing, meanwhile)

    def begin(self, outgoing: Outgoing) -> None:
        """Write the envelope's first command (MAIL FROM); the server answers it while the caller works on."""
        if self._down is not None:
            raise self._down
        if self._smtp is None:
            try:
                self._smtp = self._open()
            except TemporaryFailure as exc:
                self._down = exc
                raise
        sender, sender_utf8 = wire_address(outgoing.rendered["envelope_from"])
        recipient, recipient_utf8 = wire_address(outgoing.address or "")
        utf8 = sender_utf8 or recipient_utf8
        if utf8 and not self._smtp.has_extn("smtputf8"):
            raise PermanentFailure(
                f"{outgoing.address if recipient_utf8 else sender} has non-ASCII characters before the @, and the "
                f"SMTP server {self.config.shown if self.config else ''} does not offer SMTPUTF8 (RFC 6531) to "
                "carry them",
                reason="smtputf8_unsupported",
            )
        # An internationalised address is written in UTF-8 only with the SMTPUTF8 parameter (RFC 6531).
        self._smtp.command_encoding = "utf-8" if utf8 else "ascii"
        try:
            self._smtp.putcmd("mail", "FROM:" + _quoted(sender) + (" SMTPUTF8" if utf8 else ""))
        except (smtplib.SMTPException, OSError) as exc:
            raise self._lost(exc) from exc
        self._recipient = recipient
        self._begun = True

    def complete(self, outgoing: Outgoing, meanwhile: Callable[[], None] | None = None) -> dict[str, Any]:
        """The rest of the dialogue for a mail ``begin`` started; returns on the server's 250 for the mail.

        ``meanwhile`` runs while the server handles RCPT TO and DATA, never while it handles the mail itself.
        """
        if not self._begun:
            self.begin(outgoing)
        self._begun = False
        smtp = self._smtp
        assert smtp is not None
        try:
            code, text = smtp.getreply()
            if code != 250:
                raise self._refused(code, text, "sender refused")
            smtp.putcmd("rcpt", "TO:" + _quoted(self._recipient))
            if meanwhile is not None:
                meanwhile()
            code, text = smtp.getreply()
            if code not in (250, 251):
                raise self._refused(code, text, "recipient refused")
            smtp.putcmd("data")
            if meanwhile is not None:
                meanwhile()
            code, text = smtp.getreply()
            if code != 354:
                raise self._refused(code, text, "refused the data")
            body = _LEADING_DOT.sub(b"..", outgoing.rendered["raw"])
            smtp.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
            code, text = smtp.getreply()
            if code != 250:
                raise self._refused(code, text, "refused")
        except SendFailure:
            raise
        except (smtplib.SMTPException, OSError) as exc:  # disconnected, timed out, reset
            raise self._lost(exc) from exc
        return {"smtp": self.config.shown if self.config else ""}

    # --- a step at a time ------------------------------------------------------------------------------------

    def start(self, outgoing: Outgoing) -> None:
        """Write MAIL FROM (connecting first if need be); the server's answer is read by ``advance``."""
        self.stage = None
        self.begin(outgoing)
        self._begun = False
        self.stage = "mail"

    @property
    def waiting(self) -> bool:
        """Whether a command was written whose answer is still to be read."""
        return self.stage in ("mail", "rcpt", "data", "mail_data")

    def fileno(self) -> int:
        """The socket to wait on (``select``) while ``waiting``."""
        assert self._smtp is not None and self._smtp.sock is not None
        return self._smtp.sock.fileno()

    def advance(self, outgoing: Outgoing) -> bool:
        """Read the answer to the last command and write the next one; True once the server accepted the mail.

        Nothing runs between reading the server's acceptance and the return.
        """
        smtp, stage = self._smtp, self.stage
        assert smtp is not None and stage is not None
        try:
            code, text = smtp.getreply()
            if stage == "mail":
                if code != 250:
                    raise self._refused(code, text, "sender refused")
                smtp.putcmd("rcpt", "TO:" + _quoted(self._recipient))
                self.stage = "rcpt"
            elif stage == "rcpt":
                if code not in (250, 251):
                    raise self._refused(code, text, "recipient refused")
                smtp.putcmd("data")
                self.stage = "data"
            elif stage == "data":
                if code != 354:
                    raise self._refused(code, text, "refused the data")
                self.stage = "body"
            else:
                self.stage = None
                if code != 250:
                    raise self._refused(code, text, "refused")
                return True
        except SendFailure:
            self.stage = None
            raise
        except (smtplib.SMTPException, OSError) as exc:  # disconnected, timed out, reset
            self.stage = None
            raise self._lost(exc) from exc
        return False

    def send_body(self, outgoing: Outgoing) -> None:
        """Write the mail itself after the server's 354; its answer is the acceptance ``advance`` reads."""
        assert self.stage == "body" and self._smtp is not None
        body = _LEADING_DOT.sub(b"..", outgoing.rendered["raw"])
        try:
            self._smtp.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        except (smtplib.SMTPException, OSError) as exc:
            self.stage = None
            raise self._lost(exc) from exc
        self.stage = "mail_data"

    def fail_waiting(self) -> TemporaryFailure:
        """The server did not answer in time: the connection is dropped, the mail in hand retried later."""
        self.stage = None
        timeout = self.config.timeout if self.config else 0
        return self._lost(TimeoutError(f"no answer within {timeout:g} s"))

    def _lost(self, exc: Exception) -> TemporaryFailure:
        self._drop()
        return TemporaryFailure(f"SMTP connection lost: {type(exc).__name__}: {exc}", reason="smtp_disconnected")

    def _refused(self, code: int, text: bytes | str, what: str) -> SendFailure:
        """The failure for a refusal; the session is reset for the next mail (or dropped after a 421)."""
        if code == 421:
            self._drop()
        elif self._smtp is not None:
            try:
                self._smtp.rset()
            except (smtplib.SMTPException, OSError):
                self._drop()
        return _answer(code, text, what)

    def _drop(self) -> None:
        self._begun = False
        self.stage = None
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


def wire_address(address: str) -> tuple[str, bool]:
    """(the address as SMTP and headers carry it, whether it needs SMTPUTF8).

    Addresses are stored as people write them (``taro@例え.jp``); on the wire a Japanese domain name travels in
    its IDNA form (``taro@xn--r8jz45g.jp``), which every server accepts. Only a local part that is not ASCII
    (``太郎@example.jp``) needs a server that offers SMTPUTF8.
    """
    local, at, domain = address.rpartition("@")
    if not at:
        return address, not address.isascii()
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise PermanentFailure(f"{address}: the domain is not a valid internationalised name ({exc})") from exc
    return f"{local}@{domain}", not local.isascii()


def _tls(config: SmtpConfig) -> ssl.SSLContext:
    """Certificates and host names are always checked; ``cafile`` only says which CAs to trust."""
    try:
        return ssl.create_default_context(cafile=config.cafile)
    except (OSError, ssl.SSLError) as exc:
        raise TemporaryFailure(f"cannot read the SMTP CA file {config.cafile}: {exc}", reason="smtp_tls") from exc


_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+")


def _quoted(address: str) -> str:
    """``<address>`` for the envelope; smtplib's own quoting (a full address parser) for anything unusual."""
    return f"<{address}>" if _PLAIN_ADDRESS.fullmatch(address) else smtplib.quoteaddr(address)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _answer(code: int, text: bytes | str, what: str) -> TemporaryFailure | PermanentFailure:
    detail = f"SMTP {what}: {code} {_text(text)}"[:1000]
    if 400 <= code < 500:
        return TemporaryFailure(detail, reason=f"smtp_{code}")
    return PermanentFailure(detail, reason=f"smtp_{code}")


@contextmanager
def connection(config: SmtpConfig | None, problem: str | None = None) -> Iterator[SmtpConnection]:
    smtp = SmtpConnection(config, problem)
    try:
        yield smtp
    finally:
        smtp.close()
