"""RFC 8058 one-click unsubscribe, open pixel and click redirect, as a mail client and a recipient use them."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kizuna import keys
from kizuna.customers.models import Consent
from kizuna.db import transaction
from kizuna.messaging import tracking
from kizuna.messaging.models import Message, MessageEvent, Suppression
from kizuna.outbox.models import OutboxMessage
from tests.messaging.conftest import consented_customer, queue_mail, send_all


@pytest.fixture
def anonymous(app):  # noqa: ANN001, ANN201
    """A client with no cookies and no token: what a mail provider's server or a recipient's browser is."""
    with TestClient(app, base_url="https://crm.example.com") as c:
        yield c


def sent_mail(db, mail_ready, email="hanako@example.jp"):  # noqa: ANN001, ANN201
    with transaction(db) as s:
        c = consented_customer(s, email)
        queue_mail(s, c.id, f"first-{email}")
    send_all(db)
    [got] = mail_ready.to(email)
    return c, got


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_one_click_post_unsubscribes_at_once_without_cookies_and_stops_a_queued_message(db, mail_ready, anonymous):
    customer, got = sent_mail(db, mail_ready)
    link = got.mail["List-Unsubscribe"].strip("<>")
    # Queued before the unsubscribe arrives: the gate must still stop it.
    with transaction(db) as s:
        queue_mail(s, customer.id, "second")
        queue_mail(s, customer.id, "receipt", kind="service")

    page = anonymous.get(path_of(link))
    assert page.status_code == 200 and "配信を停止する" in page.text
    with transaction(db) as s:
        assert s.scalar(select(Suppression)) is None  # a GET (a link scanner) changes nothing

    answer = anonymous.post(
        path_of(link),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert answer.status_code == 200
    assert "配信を停止しました" in answer.text
    with transaction(db) as s:
        decision = s.scalars(select(Consent).order_by(Consent.id.desc())).first()
        assert (decision.status, decision.method) == ("withdrawn", "list_unsubscribe")
        suppression = s.scalars(select(Suppression)).one()
        assert (suppression.address, suppression.reason) == ("hanako@example.jp", "unsubscribe")
        first = s.scalars(select(Message).where(Message.key == "first-hanako@example.jp")).one()
        assert first.unsubscribed_at is not None
        topics = list(s.scalars(select(OutboxMessage.topic)))
        assert "message.unsubscribed" in topics and "consent.withdrawn" in topics

    send_all(db)
    with transaction(db) as s:
        second = s.scalars(select(Message).where(Message.key == "second")).one()
        receipt = s.scalars(select(Message).where(Message.key == "receipt")).one()
    assert (second.status, second.reason) == ("skipped", "suppressed")
    assert receipt.status == "sent"  # the order's own mail still arrives
    assert len(mail_ready.to("hanako@example.jp")) == 2

    again = anonymous.post(path_of(link), data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
    assert again.status_code == 200
    with transaction(db) as s:
        assert s.scalar(select(Consent.id).where(Consent.method == "list_unsubscribe").offset(1)) is None


def test_a_forged_or_altered_unsubscribe_token_is_refused(db, mail_ready, anonymous):
    _, got = sent_mail(db, mail_ready)
    path = path_of(got.mail["List-Unsubscribe"].strip("<>"))
    body, mac = path.removeprefix("/u/").split(".")
    other_message = keys.sign("tracking", "1").split(".")[1]  # a valid MAC, but for another purpose
    for forged in (f"/u/{body}.{mac[:-2]}xx", f"/u/{body}.{other_message}", "/u/MQ.AAAAAAAAAAAAAAAAAAAAAA", "/u/x"):
        r = anonymous.post(forged, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
        assert 400 <= r.status_code < 500, forged
        assert anonymous.get(forged).status_code >= 400
    with transaction(db) as s:
        assert s.scalar(select(Suppression)) is None


def test_open_pixel_and_click_redirect_are_recorded_and_reach_the_outbox_once(db, mail_ready, anonymous):
    _, got = sent_mail(db, mail_ready)
    html = got.part("html")
    pixel = next(part for part in html.split('"') if "/t/o/" in part)
    click = next(part for part in html.split('"') if "/t/c/" in part)
    for _ in range(2):
        r = anonymous.get(path_of(pixel))
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    r = anonymous.get(path_of(click), follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "https://shop.example.com/new?a=1&b=2"  # the link as written in the mail
    with transaction(db) as s:
        m = s.scalars(select(Message)).one()
        assert m.opened_at is not None and m.clicked_at is not None
        kinds = sorted(s.scalars(select(MessageEvent.kind).where(MessageEvent.message_id == m.id)))
        assert kinds == ["click", "open", "open"]
        topics = sorted(s.scalars(select(OutboxMessage.topic).where(OutboxMessage.topic.like("message.%"))))
        assert topics == ["message.clicked", "message.opened"]


def test_the_click_redirect_goes_only_where_the_mail_pointed(db, mail_ready, anonymous):
    _, got = sent_mail(db, mail_ready)
    click = next(part for part in got.part("html").split('"') if "/t/c/" in part)
    token = path_of(click).removeprefix("/t/c/")
    body, mac = token.split(".")
    # The URL is inside the signed token: swapping it for another one breaks the signature.
    evil = keys._b64(b"c|1|https://evil.example/phish")
    for forged in (f"/t/c/{evil}.{mac}", f"/t/c/{body}.{mac[:-3]}abc", f"/t/c/{tracking.open_token(1)}"):
        r = anonymous.get(forged, follow_redirects=False)
        assert 400 <= r.status_code < 500 and "location" not in r.headers, forged
    # Only http(s) links are tracked: a token for another scheme would not redirect even if it were signed.
    with pytest.raises(keys.BadToken):
        tracking.read_click(keys.sign("tracking", "c|1|javascript:alert(1)"))
