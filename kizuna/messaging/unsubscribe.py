"""RFC 8058 one-click unsubscribe: ``https://PUBLIC/u/TOKEN`` in ``List-Unsubscribe`` and in the footer.

The token names the message it was sent in and is signed (``keys.sign("unsubscribe", ...)``), so it cannot be
guessed or made for someone else, and it is all the POST needs: no cookie, no CSRF token (a mail provider posts
``List-Unsubscribe=One-Click`` from its own servers). Unsubscribing records a consent withdrawal with the method
``list_unsubscribe`` and suppresses the address for marketing in the same transaction, so that the very next
send is stopped by the gate, including messages queued before the unsubscribe arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from kizuna import keys
from kizuna.auth.permissions import Actor
from kizuna.messaging.models import Message

PURPOSE = "unsubscribe"
# The consent channel each message channel's unsubscribe withdraws.
CONSENT_CHANNEL = {"email": "email", "line": "line"}
ACTOR = Actor.system("unsubscribe", origin="tracking")


def token(message_id: int) -> str:
    return keys.sign(PURPOSE, str(message_id))


def url(base_url: str, message_id: int, sign: Callable[[str], str] | None = None) -> str:
    """The unsubscribe link of a message; ``sign``: a ``keys.signer("unsubscribe")`` made once for many."""
    return f"{base_url.rstrip('/')}/u/{(sign or keys.signer(PURPOSE))(str(message_id))}"


def read(token_text: str) -> int:
    """The message id inside a token; ``keys.BadToken`` for a forged or altered one."""
    value = keys.unsign(PURPOSE, token_text)
    if not value.isdigit():
        raise keys.BadToken("not an unsubscribe link")
    return int(value)


@dataclass(frozen=True)
class Target:
    """What an unsubscribe link stands for, as the confirmation page shows it."""

    message_id: int
    address: str | None
    locale: str
    already: bool


def find(session: Session, token_text: str) -> tuple[Message | None, Target]:
    message_id = read(token_text)
    message = session.get(Message, message_id)
    if message is None:  # the customer was deleted since: nothing left to unsubscribe, and nothing is sent
        return None, Target(message_id=message_id, address=None, locale="ja", already=True)
    locale = "ja"
    if message.customer_id is not None:
        from kizuna.customers.models import Customer

        customer = session.get(Customer, message.customer_id)
        locale = (customer.locale if customer else None) or "ja"
    return message, Target(
        message_id=message.id, address=message.address, locale=locale, already=message.unsubscribed_at is not None
    )


def unsubscribe(session: Session, token_text: str, *, how: str = "one_click") -> Target:
    """Withdraw marketing consent and suppress the address, at once; a repeat changes nothing."""
    from kizuna.customers import consent
    from kizuna.customers.schemas import ConsentCreate
    from kizuna.customers.service import record_consent
    from kizuna.messaging import service, tracking

    message, target = find(session, token_text)
    if message is None:
        return target
    channel = CONSENT_CHANNEL.get(message.channel, message.channel)
    if message.customer_id is not None and channel in CONSENT_CHANNEL.values():
        status = consent.statuses_in_force(session, [message.customer_id], channel=channel).get(message.customer_id)
        if status != "withdrawn":
            record_consent(
                session,
                actor=ACTOR,
                customer_id=message.customer_id,
                data=ConsentCreate(
                    channel=channel,
                    purpose="marketing",
                    status="withdrawn",
                    method="list_unsubscribe",
                    source=f"message:{message.id}",
                    evidence=f"unsubscribe link of message {message.id} ({how})",
                ),
            )
    if message.address:
        service.suppress(
            session,
            actor=ACTOR,
            channel=message.channel,
            address=message.address,
            reason="unsubscribe",
            customer_id=message.customer_id,
            message_id=message.id,
        )
    tracking.record(session, message, "unsubscribe", details={"how": how})
    return Target(message_id=message.id, address=message.address, locale=target.locale, already=target.already)
