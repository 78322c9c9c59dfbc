"""E-mail in: a raw RFC 822 message (from the mail server's pipe or relay, or read over IMAP) becomes a ticket, or a
message in the thread it answers.

Matching: the ``[#KZ-123]`` reference in the subject first (it survives clients that drop headers), then
``In-Reply-To`` / ``References`` against the Message-IDs of the threads; otherwise a new ticket (which the repeat
window may still append to the customer's open one). A mail seen before (same Message-ID: a relay's retry, an
IMAP poll after a crash) is recorded once.

Auto-replies and bounces (automail.py) are not customer messages. One that belongs to a ticket (an out-of-office
answering our reply; a bounce naming our reply's Message-ID in its returned headers) is kept on the ticket as a
system entry agents see, and a bounce marks the reply it bounced and is recorded as a bounce by kizuna/messaging
(a permanent failure suppresses the address, as for any other mail). One that belongs to no ticket is dropped:
nothing is stored but an audit entry ``inquiry.mail_ignored`` (the audit log, /admin/audit, shows what came from
whom and why it was taken for automatic) and a counted log line.

Japanese mail comes as ISO-2022-JP or Shift_JIS as often as UTF-8. The standard library's ``email`` package with
``policy.default`` decodes headers (RFC 2047) and bodies; a body whose charset is wrong or missing is decoded by a
fixed order of Japanese-aware guesses (Shift_JIS is read as CP932, its superset, which has ①, ～ and 髙), and as a
last resort with replacement characters. The raw mail is kept on the message in every case, so nothing is lost.
"""

from __future__ import annotations

import base64
import codecs
import email
import email.policy
import logging
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import parseaddr

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.db import utcnow
from kizuna.errors import ValidationError
from kizuna.inquiries import automail
from kizuna.inquiries.models import Inquiry, InquiryMessage
from kizuna.inquiries.schemas import BODY_MAX, EmailInResult, InquiryCreate
from kizuna.messaging.templates import html_to_text

# Charset labels seen in Japanese mail, read with the codec that decodes what senders actually put in them.
_CODECS = {
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "windows-31j": "cp932",
    "ms932": "cp932", "cp932": "cp932", "iso-2022-jp": "iso2022_jp_ext", "iso2022_jp": "iso2022_jp_ext",
    "csiso2022jp": "iso2022_jp_ext", "euc-jp": "euc_jis_2004", "x-euc-jp": "euc_jis_2004",
}  # fmt: skip
# Tried in order when the declared charset fails or is missing.
_GUESSES = ("utf-8", "iso2022_jp_ext", "cp932", "euc_jis_2004")
log = logging.getLogger(__name__)


@dataclass
class ParsedMail:
    from_address: str
    from_name: str
    subject: str
    text: str
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    raw: str
    problems: list[str] = field(default_factory=list)
    # An auto-reply or a bounce (None: a person wrote it).
    auto: automail.AutoMail | None = None


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip('"').lower()
    return _CODECS.get(name, name)


def decode_bytes(data: bytes, charset: str | None, problems: list[str]) -> str:
    """Text of ``data``: the declared charset, then Japanese-aware guesses, then replacement characters."""
    tried: list[str] = []
    for codec in (_codec(charset), *_GUESSES):
        if not codec or codec in tried:
            continue
        tried.append(codec)
        try:
            text = data.decode(codec)
        except (LookupError, UnicodeDecodeError):
            continue
        if codec != _codec(charset):
            problems.append(f"body declared as {charset or 'no charset'}, read as {codec}")
        return text
    problems.append(f"body undecodable as {charset or 'any known charset'}; unreadable bytes replaced (raw kept)")
    return data.decode(_codec(charset) if _known(charset) else "utf-8", errors="replace")


def _known(charset: str | None) -> bool:
    try:
        codecs.lookup(_codec(charset) or "")
    except LookupError:
        return False
    return bool(charset)


def _part_text(part: Message, problems: list[str]) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        data = str(part.get_payload()).encode("utf-8", errors="replace")
    text = decode_bytes(data, part.get_content_charset(), problems)
    return html_to_text(text) if part.get_content_type() == "text/html" else text


def _body(mail: EmailMessage, problems: list[str]) -> str:
    try:
        part = mail.get_body(preferencelist=("plain", "html"))
    except Exception:  # noqa: BLE001 - a malformed MIME tree: fall back to walking it
        part = None
    if part is None:
        for candidate in mail.walk():
            if candidate.get_content_maintype() == "text":
                part = candidate
                break
    if part is None:
        problems.append("no text part")
        return ""
    return _clean(_part_text(part, problems).replace("\r\n", "\n").strip())


def _damaged(text: str) -> bool:
    """Replacement characters or escaped undecodable bytes: the parser could not read this header properly."""
    return "\ufffd" in text or "=?" in text or any("\udc80" <= ch <= "\udcff" for ch in text)


def _header(mail: Message, name: str, problems: list[str]) -> str:
    try:
        value = mail.get(name)
    except Exception as exc:  # noqa: BLE001 - the header parser refuses some broken encoded words
        problems.append(f"{name} header unreadable by the parser ({type(exc).__name__})")
        value = ""
    if value is None:
        return ""
    text = str(value)
    if not text or _damaged(text):
        # An encoded word in a charset the parser reads too strictly (Shift_JIS with ①), an unknown charset, or
        # raw 8-bit bytes: decode the header as received, with the body's Japanese-aware order.
        text = _decode_raw_header(mail, name, problems) or text
    return _clean(" ".join(text.split()))


def _decode_raw_header(mail: Message, name: str, problems: list[str]) -> str:
    from email.header import decode_header

    raw = next((v for k, v in mail.raw_items() if k.lower() == name.lower()), None)
    if raw is None:
        return ""
    out = []
    try:
        chunks = decode_header(str(raw))
    except Exception:  # noqa: BLE001
        chunks = [(str(raw), None)]
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            chunk = chunk.encode("ascii", errors="surrogateescape")
        out.append(decode_bytes(chunk, charset, problems))
    return "".join(out)


def _clean(text: str) -> str:
    """No escaped bytes survive into stored text (PostgreSQL and JSON refuse them): each becomes U+FFFD."""
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace") if _damaged(text) else text


def _ids(value: str) -> list[str]:
    return [f"<{part.strip('<>')}>" for part in value.replace(",", " ").split() if "@" in part]


def keep_raw(raw: bytes) -> str:
    """The raw mail as text: itself when it is clean UTF-8 (or ASCII), else base64 (lossless)."""
    try:
        text = raw.decode("utf-8")
        if "\x00" not in text:
            return text
    except UnicodeDecodeError:
        pass
    return "base64:" + base64.b64encode(raw).decode()


def parse(raw: bytes) -> ParsedMail:
    # Raw headers of Shift_JIS mail are sometimes 8-bit without encoded words; the compat parser keeps the bytes
    # (surrogate-escaped) and the header code below decodes what it can.
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    problems: list[str] = []
    from_value = _header(mail, "From", problems)
    name, address = parseaddr(from_value)
    if not address and mail.get("Reply-To"):
        name, address = parseaddr(_header(mail, "Reply-To", problems))
    references: list[str] = []
    for value in mail.get_all("References") or []:
        references += _ids(str(value))
    return ParsedMail(
        from_address=address.strip(),
        from_name=name.strip(),
        subject=_header(mail, "Subject", problems),
        text=_body(mail, problems),
        message_id=(_ids(_header(mail, "Message-ID", problems)) or [None])[0],
        in_reply_to=_ids(_header(mail, "In-Reply-To", problems)),
        references=references,
        raw=keep_raw(raw),
        problems=problems,
        auto=automail.classify(mail),
    )


def _match(session: Session, mail: ParsedMail) -> Inquiry | None:
    """The ticket a mail answers. Our Message-IDs are random, so a mail naming one in In-Reply-To/References
    answers that thread whoever sends it (a colleague of the customer replying too); a ``[#KZ-n]`` reference is
    guessable, so it counts only from the ticket's own correspondent: a stranger cannot write into a thread."""
    from kizuna.customers.models import Customer
    from kizuna.inquiries.service import REFERENCE

    ids = [*mail.in_reply_to, *reversed(mail.references)]
    if ids:
        inquiry_id = session.scalar(
            select(InquiryMessage.inquiry_id).where(InquiryMessage.email_message_id.in_(ids[:50])).limit(1)
        )
        if inquiry_id is not None:
            return session.get(Inquiry, inquiry_id)
    found = REFERENCE.search(mail.subject)
    if found:
        inquiry = session.get(Inquiry, int(found.group(1)))
        if inquiry is not None:
            known = {inquiry.reply_to or ""}
            if inquiry.customer_id is not None:
                known.add(session.scalar(select(Customer.email).where(Customer.id == inquiry.customer_id)) or "")
            if mail.from_address.lower() in {k.lower() for k in known if k}:
                return inquiry
    return None


def receive(session: Session, *, actor: Actor, raw: bytes) -> EmailInResult:
    """Thread one raw mail into the desk; returns the ticket and message it became."""
    from kizuna.inquiries import service

    require(actor, "inquiries:create")
    if not raw.strip():
        raise ValidationError("the mail is empty; post the raw RFC 822 message as the request body", field="body")
    if len(raw) > get_settings().inquiry_mail_max_bytes:
        raise ValidationError(f"the mail is larger than {get_settings().inquiry_mail_max_bytes} bytes", field="body")
    mail = parse(raw)
    if mail.message_id:
        seen = session.scalars(select(InquiryMessage).where(InquiryMessage.email_message_id == mail.message_id)).first()
        if seen is not None:
            return EmailInResult(inquiry_id=seen.inquiry_id, message_id=seen.id, created=False, duplicate=True)
    if mail.auto is not None:
        return _receive_automatic(session, actor=actor, mail=mail, auto=mail.auto)
    if not mail.from_address or "@" not in mail.from_address:
        raise ValidationError("the mail has no usable From address; cannot tell who is asking", field="From")
    body = mail.text
    if len(body) > BODY_MAX:
        mail.problems.append(f"body cut at {BODY_MAX} characters (raw kept)")
        body = body[:BODY_MAX]
    details = {"problems": mail.problems, "from": mail.from_address} if mail.problems else {"from": mail.from_address}
    inquiry = _match(session, mail)
    if inquiry is not None:
        message = service.append_customer_message(
            session, actor=actor, inquiry=inquiry, body=body, author=mail.from_address,
            email_message_id=mail.message_id, raw=mail.raw, details=details,
        )  # fmt: skip
        return EmailInResult(inquiry_id=inquiry.id, message_id=message.id, created=False)
    subject = (mail.subject or "(no subject)")[:300]
    data = InquiryCreate(
        subject=subject, body=body, channel="email", email=mail.from_address, name=mail.from_name or None,
        email_message_id=mail.message_id, raw=mail.raw,
    )  # fmt: skip
    opened = service.open_inquiry(session, actor=actor, data=data)
    assert opened.message is not None
    opened.message.details = {**(opened.message.details or {}), **details}
    return EmailInResult(inquiry_id=opened.inquiry.id, message_id=opened.message.id, created=opened.created)


# --- auto-replies and bounces --------------------------------------------------------------------------------


def _bounced_reply(session: Session, auto: automail.AutoMail) -> InquiryMessage | None:
    """The agent's reply a bounce names (by the Message-ID in its returned headers): our ids are random, so the
    match proves the bounce is about our mail, whoever relayed it."""
    if not auto.original_ids:
        return None
    return session.scalars(
        select(InquiryMessage).where(
            InquiryMessage.email_message_id.in_(auto.original_ids[:20]), InquiryMessage.direction == "out"
        )
    ).first()


def _receive_automatic(session: Session, *, actor: Actor, mail: ParsedMail, auto: automail.AutoMail) -> EmailInResult:
    bounced = _bounced_reply(session, auto) if auto.kind == "bounce" else None
    inquiry = session.get(Inquiry, bounced.inquiry_id) if bounced is not None else None
    if inquiry is None and auto.kind == "auto_reply":
        inquiry = _match(session, mail)
    sender = mail.from_address or "<>"
    if inquiry is None:
        audit.record(
            session, actor=actor, action="inquiry.mail_ignored", entity_type="inquiry",
            summary=f"{auto.kind} from {sender}: {mail.subject[:120]}",
            details={"kind": auto.kind, "from": sender, "subject": mail.subject[:300], "reason": auto.reason,
                     "summary": auto.summary(), "message_id": mail.message_id},
        )  # fmt: skip
        log.info("inquiry mail ignored: %s from %s (%s), no ticket matched", auto.kind, sender, auto.reason)
        return EmailInResult(inquiry_id=None, message_id=None, created=False, automatic=auto.kind, ignored=True)
    now = utcnow()
    details: dict[str, object] = {"auto": auto.kind, "reason": auto.reason, "from": sender, "subject": mail.subject}
    if auto.kind == "bounce":
        failed = [d for d in auto.deliveries if d.failed]
        details["summary"] = auto.summary()
        details["failed"] = bool(failed)
        details["permanent"] = any(d.permanent for d in failed)
    # The thread shows what the mail said (an out-of-office's return date) as a system entry, never as the
    # customer's message: the ticket's status, its SLA and the customer's last message stay as they were.
    entry = InquiryMessage(
        inquiry_id=inquiry.id, customer_id=inquiry.customer_id, direction="note", author_label=sender,
        body=mail.text[:BODY_MAX], email_message_id=mail.message_id, raw=mail.raw, details=details, created_at=now,
    )  # fmt: skip
    session.add(entry)
    session.flush()
    if bounced is not None and details.get("failed"):
        bounced.details = {
            **(bounced.details or {}),
            "bounced": {"at": now.isoformat(), "summary": auto.summary(), "permanent": details["permanent"],
                        "entry_id": entry.id},
        }  # fmt: skip
        _report_bounces(session, actor=actor, auto=auto, reply=bounced)
    from kizuna.inquiries.service import reference

    audit.record(
        session, actor=actor, action="inquiry.auto_mail", entity_type="inquiry", entity_id=inquiry.id,
        customer_id=inquiry.customer_id, summary=f"{reference(inquiry.id)}: {auto.kind} from {sender}",
        details={"kind": auto.kind, "reason": auto.reason, "summary": auto.summary()},
    )  # fmt: skip
    return EmailInResult(inquiry_id=inquiry.id, message_id=entry.id, created=False, automatic=auto.kind)


def _report_bounces(session: Session, *, actor: Actor, auto: automail.AutoMail, reply: InquiryMessage) -> None:
    """Each failed recipient as a bounce of the reply's message, through the messaging bounce handling: a hard
    bounce suppresses the address exactly as a marketing bounce does. The bounce matched one of our random
    Message-IDs, so the desk's mail server speaks for it (``suppressions:write`` is the system's, not the token's)."""
    from kizuna.messaging import bounces
    from kizuna.messaging.schemas import BounceReport

    if reply.outgoing_message_id is None:
        return
    reports = [
        BounceReport(
            type="bounce",
            bounce_type="hard" if d.permanent else "soft",
            message_id=str(reply.outgoing_message_id),
            email=d.recipient[:320] or None,
            reason=(d.diagnostic or d.status)[:2000] or None,
        )
        for d in auto.deliveries
        if d.failed
    ]
    if reports:
        bounces.record_reports(session, actor=Actor.system("inquiry-bounces", origin=actor.origin), reports=reports)
