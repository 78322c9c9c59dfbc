"""Linking a LINE follower to a known customer: the signed link end to end, and LINE's account-link flow."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kizuna.customers.models import Customer, CustomerIdentity
from kizuna.db import new_session
from kizuna.keys import BadToken, sign
from kizuna.messaging import linking
from kizuna.messaging.line import CHANNEL, save_settings
from kizuna.messaging.line_models import LineLink
from kizuna.outbox.models import OutboxMessage
from tests import factories
from tests.messaging.test_line_inbound import deliver, event, uid


@pytest.fixture
def web(app, line_env) -> TestClient:  # noqa: ANN001
    with TestClient(app) as c:
        yield c


@pytest.fixture
def known(session, admin) -> Customer:  # noqa: ANN001
    customer = factories.customer(session, email="taro@example.com", family_name="山田", given_name="太郎")
    save_settings(session, actor=admin, bot_basic_id="@kizuna")
    session.commit()
    return customer


def linked_state(engine, customer_id: int):  # noqa: ANN001, ANN201
    with new_session(engine) as s:
        identity = s.scalar(select(CustomerIdentity).where(CustomerIdentity.kind == "line_user_id"))
        customers = {c.id: c for c in s.scalars(select(Customer))}
        return identity, customers, CHANNEL.addresses(s, [customer_id])


def test_signed_link_end_to_end_merges_the_anonymous_profile(client, web, db, known):
    # An anonymous follower...
    deliver(web, event("follow", uid(1)))
    identity, customers, _ = linked_state(db, known.id)
    anonymous_id = identity.customer_id
    assert anonymous_id != known.id and customers[anonymous_id].attributes == {"anonymous": True}

    # ...is sent (by mail) a signed link for the known customer, and opens it.
    offer = client.post("/api/v1/line/links", json={"customer_id": known.id})
    assert offer.status_code == 201, offer.text
    path = urlsplit(offer.json()["url"]).path
    assert path.startswith("/line/link/")
    page = web.get(path)
    assert page.status_code == 200
    code = re.search(r'data-testid="line-link-code">([^<]+)<', page.text).group(1)
    assert code == offer.json()["code"]
    assert "taro@example.com" not in page.text and "山田" not in page.text  # a bearer link shows nobody's data
    chat = re.search(r'href="([^"]+)" data-testid="line-chat-link"', page.text).group(1).replace("&amp;", "&")
    assert chat.startswith("https://line.me/R/oaMessage/%40kizuna/?")
    assert unquote(chat.split("?", 1)[1]) == code

    # The customer sends the code from LINE: LINE delivers it to the webhook with their user id.
    sent = deliver(web, event("message", uid(1), message={"type": "text", "id": "1", "text": code}))
    assert sent.json() == {"handled": {"linked": 1}}

    identity, customers, addresses = linked_state(db, known.id)
    assert identity.customer_id == known.id and identity.source == "line_link"
    assert customers[anonymous_id].status == "merged" and customers[anonymous_id].merged_into_id == known.id
    assert "anonymous" not in (customers[known.id].attributes or {})
    assert addresses == {known.id: uid(1)}  # the follow's consent moved with the profile
    view = client.get(f"/api/v1/customers/{anonymous_id}/360").json()
    assert view["customer"]["id"] == known.id  # the anonymous profile's id reads the known customer
    assert anonymous_id in view["merged_ids"]
    assert {"kind": "line_user_id", "value": uid(1), "source": "line_link"}.items() <= next(
        i for i in view["identities"] if i["kind"] == "line_user_id"
    ).items()
    assert [c["method"] for c in view["consents"] if c["channel"] == "line"] == ["line_follow"]
    with new_session(db) as s:
        linked = s.scalar(select(OutboxMessage).where(OutboxMessage.topic == "line.linked"))
        assert linked.payload == {"customer_id": known.id, "method": "signed_link", "merged_id": anonymous_id}
        (row,) = s.scalars(select(LineLink))
        assert (row.status, row.line_user_id, row.merged_id) == ("linked", uid(1), anonymous_id)


def test_a_link_code_works_once(client, web, db, known):
    code = client.post("/api/v1/line/links", json={"customer_id": known.id}).json()["code"]
    assert deliver(web, event("message", uid(2), message={"type": "text", "text": code})).json() == {
        "handled": {"linked": 1}
    }
    # The same code from another LINE account (a forwarded mail) links nothing.
    again = deliver(web, event("message", uid(3), message={"type": "text", "text": f"こんにちは {code}"}))
    assert again.json() == {"handled": {"ignored": 1}}
    with new_session(db) as s:
        line_ids = select(CustomerIdentity.value, CustomerIdentity.customer_id).where(
            CustomerIdentity.kind == "line_user_id"
        )
        assert dict(s.execute(line_ids).all()) == {uid(2): known.id}


def test_forged_and_expired_codes_link_nothing(web, db, known):
    forged = linking.CODE_PREFIX + sign("another-purpose", f"{known.id}.{int(time.time()) + 999}.abc")
    assert deliver(web, event("message", uid(4), message={"type": "text", "text": forged})).json() == {
        "handled": {"ignored": 1}
    }
    expired = linking.make_token(known.id, now=time.time() - 30 * 86400)
    with pytest.raises(BadToken, match="expired"):
        linking.read_token(expired)
    text = linking.code_of(expired)
    assert deliver(web, event("message", uid(4), message={"type": "text", "text": text})).json() == {
        "handled": {"ignored": 1}
    }
    assert web.get(f"/line/link/{expired}").status_code == 410
    assert web.get("/line/link/not-a-token").status_code == 404
    with new_session(db) as s:
        assert s.scalar(select(CustomerIdentity).where(CustomerIdentity.kind == "line_user_id")) is None


def test_a_line_user_of_another_known_customer_is_not_merged_silently(client, web, db, known, session):
    other = factories.customer(session, email="jiro@example.com")
    from kizuna.customers import identities

    identities.add_identity(session, actor=factories.SYSTEM, customer=other, kind_name="line_user_id", value=uid(5))
    session.commit()
    code = client.post("/api/v1/line/links", json={"customer_id": known.id}).json()["code"]
    answer = deliver(web, event("message", uid(5), message={"type": "text", "text": code}))
    assert answer.json() == {"handled": {"refused": 1}}
    with new_session(db) as s:
        assert s.scalar(select(CustomerIdentity.customer_id).where(CustomerIdentity.value == uid(5))) == other.id
        assert s.get(Customer, other.id).status == "active"
        assert s.scalar(select(LineLink)) is None  # the refused link left nothing behind (its code still works)


def test_account_link_flow(client, web, db, known, line_env):
    deliver(web, event("follow", uid(6)))
    issued = client.post("/api/v1/line/link-token", json={"line_user_id": uid(6)})
    assert issued.status_code == 200, issued.text
    link_token = issued.json()["link_token"]
    assert any(r.path == f"/v2/bot/user/{uid(6)}/linkToken" for r in line_env.requests)
    started = client.post("/api/v1/line/account-link", json={"customer_id": known.id, "link_token": link_token})
    assert started.status_code == 201, started.text
    redirect = urlsplit(started.json()["redirect_url"])
    assert f"{redirect.scheme}://{redirect.netloc}{redirect.path}" == "https://access.line.me/dialog/bot/accountLink"
    query = parse_qs(redirect.query)
    assert query["linkToken"] == [link_token]
    nonce = query["nonce"][0]
    assert len(nonce) >= 32

    # LINE reports the link to the webhook with the nonce.
    done = deliver(web, event("accountLink", uid(6), link={"result": "ok", "nonce": nonce}))
    assert done.json() == {"handled": {"linked": 1}}
    identity, customers, addresses = linked_state(db, known.id)
    assert identity.customer_id == known.id and identity.source == "line_account_link"
    assert addresses == {known.id: uid(6)}
    # A nonce links once; a failed link links nothing.
    again = deliver(web, event("accountLink", uid(7), link={"result": "ok", "nonce": nonce}))
    failed = deliver(web, event("accountLink", uid(7), link={"result": "failed"}))
    assert again.json() == failed.json() == {"handled": {"ignored": 1}}


def test_linking_needs_the_right_to_change_customers(client_as, known):
    viewer = client_as("viewer")
    assert viewer.post("/api/v1/line/links", json={"customer_id": known.id}).status_code == 403
    answer = viewer.post("/api/v1/line/account-link", json={"customer_id": known.id, "link_token": "x"})
    assert answer.status_code == 403


def test_staff_make_a_link_from_the_360_page_and_see_how_it_was_linked(web, db, known, ui_client):
    ui = ui_client("marketer")
    page = ui.get(f"/customers/{known.id}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    offer = ui.post(f"/customers/{known.id}/line-link", data={"csrf_token": token})
    assert offer.status_code == 200
    url = re.search(r'data-testid="line-offer-url">', offer.text) and re.search(
        r'value="(http[^"]+/line/link/[^"]+)" id="line-offer-url"', offer.text
    ).group(1)
    code = linking.code_of(url.rsplit("/", 1)[1])
    deliver(web, event("message", uid(8), message={"type": "text", "text": code}))
    ui.cookies.set("kizuna_lang", "ja")
    page = ui.get(f"/customers/{known.id}")
    assert uid(8) in page.text
    assert re.search(r'data-testid="identity-source">連携リンクで連携<', page.text)
