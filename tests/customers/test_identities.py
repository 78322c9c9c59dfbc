"""Identities as data: many per customer, unique kinds and hints, never a merge without a person deciding."""

from __future__ import annotations

from sqlalchemy import select

from kizuna.outbox.models import OutboxMessage

LINE_ID = "U" + "0123456789abcdef" * 2


def _create(client, **fields) -> dict:
    r = client.post("/api/v1/customers", json={"family_name": "山田", "given_name": "太郎", **fields})
    assert r.status_code == 201, r.text
    return r.json()


def _identities(client, cid: int) -> list[tuple[str, str]]:
    return sorted((i["kind"], i["value"]) for i in client.get(f"/api/v1/customers/{cid}/identities").json())


def test_a_customer_gets_a_line_id_a_shop_id_and_a_second_email(client, session):
    c = _create(client, email="taro@example.jp", external_id="CRM-1")
    for kind, value in (
        ("line_user_id", LINE_ID),
        ("external_id:shopify", "7712"),
        ("email", "Taro.Work@Example.JP"),
    ):
        r = client.post(f"/api/v1/customers/{c['id']}/identities", json={"kind": kind, "value": value})
        assert r.status_code == 201, r.text
    assert _identities(client, c["id"]) == [
        ("email", "taro.work@example.jp"),
        ("email", "taro@example.jp"),
        ("external_id", "CRM-1"),
        ("external_id:shopify", "7712"),
        ("line_user_id", LINE_ID),
    ]
    # The primary e-mail stays the first one until asked otherwise.
    assert client.get(f"/api/v1/customers/{c['id']}").json()["email"] == "taro@example.jp"
    topics = session.scalars(select(OutboxMessage.topic).where(OutboxMessage.customer_id == c["id"]))
    assert list(topics).count("identity.added") == 3


def test_a_unique_identity_of_another_customer_is_refused_naming_the_owner_and_nothing_merges(client):
    a = _create(client, email="a@example.jp")
    b = _create(client, email="b@example.jp")
    client.post(f"/api/v1/customers/{a['id']}/identities", json={"kind": "line_user_id", "value": LINE_ID})
    r = client.post(f"/api/v1/customers/{b['id']}/identities", json={"kind": "line_user_id", "value": LINE_ID})
    assert r.status_code == 409
    assert f"customer {a['id']}" in r.json()["error"]["message"]
    r = client.post(f"/api/v1/customers/{b['id']}/identities", json={"kind": "email", "value": "A@example.jp"})
    assert r.status_code == 409
    assert client.get(f"/api/v1/customers/{b['id']}").json()["status"] == "active"
    assert _identities(client, b["id"]) == [("email", "b@example.jp")]


def test_a_shared_phone_is_allowed_and_proposes_a_duplicate_pair_that_can_be_dismissed(client):
    father = _create(client, given_name="一郎", phone="03-1234-5678")
    son = _create(client, given_name="次郎", phone="０３－１２３４－５６７８")
    assert son["phone"] == father["phone"] == "+81312345678"
    [pair] = client.get("/api/v1/customers/duplicates").json()
    assert (pair["customer_id"], pair["other_customer_id"], pair["reason"]) == (father["id"], son["id"], "same phone")

    r = client.post(f"/api/v1/customers/duplicates/{pair['id']}/dismiss")
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    assert client.post(f"/api/v1/customers/duplicates/{pair['id']}/dismiss").status_code == 409
    # Not proposed again when the phone is added once more.
    third = client.post(f"/api/v1/customers/{son['id']}/identities", json={"kind": "phone", "value": "090-1111-2222"})
    assert third.status_code == 201
    assert client.get("/api/v1/customers/duplicates").json() == []
    assert client.get("/api/v1/customers/duplicates", params={"status": "dismissed"}).json()[0]["id"] == pair["id"]


def test_removing_the_primary_promotes_the_next_of_its_kind(client):
    c = _create(client, email="first@example.jp")
    client.post(f"/api/v1/customers/{c['id']}/identities", json={"kind": "email", "value": "second@example.jp"})
    ids = {i["value"]: i["id"] for i in client.get(f"/api/v1/customers/{c['id']}/identities").json()}
    assert client.delete(f"/api/v1/customers/{c['id']}/identities/{ids['first@example.jp']}").status_code == 204
    assert client.get(f"/api/v1/customers/{c['id']}").json()["email"] == "second@example.jp"
    assert client.delete(f"/api/v1/customers/{c['id']}/identities/{ids['first@example.jp']}").status_code == 404
    # Asking for primary moves the mirrored column.
    r = client.post(
        f"/api/v1/customers/{c['id']}/identities", json={"kind": "email", "value": "third@example.jp", "primary": True}
    )
    assert r.status_code == 201
    assert client.get(f"/api/v1/customers/{c['id']}").json()["email"] == "third@example.jp"


def test_bad_kinds_and_values_name_the_problem(client):
    c = _create(client)
    r = client.post(f"/api/v1/customers/{c['id']}/identities", json={"kind": "fax", "value": "1"})
    assert r.status_code == 422 and "unknown identity kind 'fax'" in r.json()["error"]["message"]
    r = client.post(f"/api/v1/customers/{c['id']}/identities", json={"kind": "line_user_id", "value": "taro"})
    assert r.status_code == 422 and "LINE user id" in r.json()["error"]["message"]
    r = client.post(f"/api/v1/customers/{c['id']}/identities", json={"kind": "email", "value": "not-an-email"})
    assert r.status_code == 422
    r = client.post(f"/api/v1/customers/{c['id']}/identities", json={"kind": "external_id:Bad Source", "value": "1"})
    assert r.status_code == 422


def test_a_merge_keeps_every_identity_and_settles_the_pairs(client):
    a = _create(client, email="a@example.jp", phone="090-1234-5678")
    b = _create(client, email="b@example.jp", phone="090-1234-5678")
    c = _create(client, email="c@example.jp", phone="090-1234-5678")
    pairs = client.get("/api/v1/customers/duplicates").json()
    assert len(pairs) == 3
    r = client.post(f"/api/v1/customers/{a['id']}/merge", json={"merge_id": b["id"], "reason": "same person"})
    assert r.status_code == 200, r.text
    assert _identities(client, a["id"]) == [
        ("email", "a@example.jp"),
        ("email", "b@example.jp"),
        ("phone", "+819012345678"),
    ]
    open_pairs = [(p["customer_id"], p["other_customer_id"]) for p in client.get("/api/v1/customers/duplicates").json()]
    assert open_pairs == [(a["id"], c["id"])]
    merged = client.get("/api/v1/customers/duplicates", params={"status": "merged"}).json()
    assert {(p["customer_id"], p["other_customer_id"]) for p in merged} == {(a["id"], b["id"]), (b["id"], c["id"])}
