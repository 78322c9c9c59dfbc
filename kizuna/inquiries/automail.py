"""Mail no person wrote: auto-replies (out-of-office, "we got your mail") and bounces (delivery status
notifications). Neither is a customer's message: it opens no ticket, creates no customer, does not reopen a pending
ticket or count as the customer's answer, and is not a repeat. What the desk does with one is in email_in.

An auto-reply is recognised by its headers only (RFC 3834 ``Auto-Submitted`` other than ``no``; ``X-Autoreply``,
``X-Autorespond``; ``Precedence: auto_reply|bulk|junk|list``). A subject such as 「不在」 or "Out of office" is
not enough alone: a person may well write one.

A bounce is a DSN (RFC 3464: ``multipart/report; report-type=delivery-status``), or a mail from the null return
path / ``MAILER-DAEMON`` carrying a delivery-status part. Its ``message/delivery-status`` part says, per recipient,
the action (failed, delayed ...), the status (5.1.1: permanent; 4.x.x: temporary) and the remote server's
diagnostic; its ``text/rfc822-headers`` (or ``message/rfc822``) part holds the headers of the mail that failed,
whose Message-ID finds the agent's reply it bounced.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parseaddr
from typing import Literal

AUTO_PRECEDENCE = ("auto_reply", "bulk", "junk", "list")
_DAEMONS = ("mailer-daemon", "postmaster")
_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")


@dataclass
class Delivery:
    """One recipient's line of a delivery status notification."""

    recipient: str
    action: str
    status: str
    diagnostic: str

    @property
    def permanent(self) -> bool:
        return self.action == "failed" and self.status.startswith("5")

    @property
    def failed(self) -> bool:
        return self.action == "failed"


@dataclass
class AutoMail:
    kind: Literal["auto_reply", "bounce"]
    # Why it was taken for one (the header that said so), for the entry agents read.
    reason: str
    deliveries: list[Delivery] = field(default_factory=list)
    # Message-IDs of the mail that bounced (from the report's returned headers).
    original_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """``550 5.1.1 <a@b>: User unknown`` for a bounce (its first failed recipient), else the reason."""
        if self.kind != "bounce":
            return self.reason
        failed = next((d for d in self.deliveries if d.failed), None) or next(iter(self.deliveries), None)
        if failed is None:
            return self.reason
        return (failed.diagnostic or f"{failed.status} {failed.recipient}").strip()[:500]


def _value(mail: Message, name: str) -> str:
    try:
        value = mail.get(name)
    except Exception:  # noqa: BLE001 - an unparseable header says nothing either way
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _ids(value: str) -> list[str]:
    return [f"<{part.strip('<>')}>" for part in value.replace(",", " ").split() if "@" in part]


def _fields(block: Message) -> dict[str, str]:
    return {k.lower(): " ".join(str(v).split()) for k, v in block.items()}


def _strip_type(value: str) -> str:
    """``rfc822; a@b`` -> ``a@b``; ``smtp; 550 ...`` -> ``550 ...``."""
    kind, sep, rest = value.partition(";")
    return rest.strip() if sep and " " not in kind.strip() else value.strip()


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    # Some parsers leave the report as text: its blocks are separated by blank lines.
    text = str(payload).replace("\r\n", "\n")
    return [email.message_from_string(b.strip() + "\n") for b in text.split("\n\n") if b.strip()]


def _returned_headers(part: Message) -> Message | None:
    if part.get_content_type() == "message/rfc822":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        return inner if isinstance(inner, Message) else None
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        data = str(part.get_payload()).encode("utf-8", errors="replace")
    return email.message_from_bytes(data.lstrip(), policy=email.policy.compat32)


def _bounce(mail: Message) -> AutoMail | None:
    report = mail.get_content_type() == "multipart/report" and (
        (mail.get_param("report-type") or "").lower() == "delivery-status"
    )
    sender = parseaddr(_value(mail, "From"))[1].lower()
    return_path = _value(mail, "Return-Path")
    daemon = return_path.replace(" ", "") == "<>" or sender.split("@", 1)[0] in _DAEMONS
    status_parts = [p for p in mail.walk() if p.get_content_type() in _STATUS_TYPES]
    if not report and not (daemon and status_parts):
        return None
    deliveries: list[Delivery] = []
    for part in status_parts:
        for block in _status_blocks(part)[1:]:  # the first block is about the reporting server
            values = _fields(block)
            if "action" not in values and "final-recipient" not in values:
                continue
            deliveries.append(
                Delivery(
                    recipient=_strip_type(values.get("final-recipient") or values.get("original-recipient") or ""),
                    action=values.get("action", "").lower(),
                    status=values.get("status", ""),
                    diagnostic=_strip_type(values.get("diagnostic-code", "")),
                )
            )
    original: list[str] = []
    for part in mail.walk():
        if part.get_content_type() in ("text/rfc822-headers", "message/rfc822", "message/global-headers"):
            headers = _returned_headers(part)
            if headers is not None:
                original += _ids(_value(headers, "Message-ID"))
    reason = "multipart/report; report-type=delivery-status" if report else f"delivery report from {sender or '<>'}"
    return AutoMail(kind="bounce", reason=reason, deliveries=deliveries, original_ids=original)


def classify(mail: Message) -> AutoMail | None:
    """What kind of automatic mail ``mail`` is, or None for a mail a person wrote."""
    found = _bounce(mail)
    if found is not None:
        return found
    submitted = _value(mail, "Auto-Submitted").split(";", 1)[0].strip().lower()
    if submitted and submitted != "no":
        return AutoMail(kind="auto_reply", reason=f"Auto-Submitted: {submitted}")
    for name in ("X-Autoreply", "X-Autorespond"):
        if _value(mail, name):
            return AutoMail(kind="auto_reply", reason=f"{name}: {_value(mail, name)[:60]}")
    precedence = _value(mail, "Precedence").lower()
    if precedence in AUTO_PRECEDENCE:
        return AutoMail(kind="auto_reply", reason=f"Precedence: {precedence}")
    return None
