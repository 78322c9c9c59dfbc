"""The customer API over real HTTP semantics: CRUD, lost-update protection, paging, errors."""

from __future__ import annotations


def _create(client, **fields):
    body = {"family_name": "山田", "given_name": "太郎", **fields}
    r = client.post("/api/v1/customers", json=body)
    assert r.status_code == 201, r.text
    return r


def test_create_read_update_delete_customer(client):
    r = _create(client, email="Taro@Example.JP", phone="090-1234-5678", family_name_kana="やまだ", tags=["VIP"])
    created = r.json()
    assert created["email"] == "taro@example.jp"
    assert created["phone"] == "+819012345678"
    assert created["family_name_kana"] == "ヤマダ"
    assert created["tags"] == ["VIP"]
    assert r.headers["ETag"] == 'W/"1"'

    got = client.get(f"/api/v1/customers/{created['id']}")
    assert got.status_code == 200
    assert got.json()["full_name"] == "山田 太郎"

    patched = client.patch(f"/api/v1/customers/{created['id']}", json={"city": "渋谷区"}, headers={"If-Match": 'W/"1"'})
    assert patched.status_code == 200, patched.text
    assert patched.json()["city"] == "渋谷区"
    assert patched.json()["version"] == 2
    assert patched.headers["ETag"] == 'W/"2"'

    assert client.delete(f"/api/v1/customers/{created['id']}", headers={"If-Match": 'W/"2"'}).status_code == 204
    assert client.get(f"/api/v1/customers/{created['id']}").status_code == 404


def test_stale_if_match_is_412_stale_version_is_409_and_missing_is_428(client):
    cid = _create(client).json()["id"]
    assert (
        client.patch(f"/api/v1/customers/{cid}", json={"city": "A"}, headers={"If-Match": 'W/"1"'}).status_code == 200
    )
    stale = client.patch(f"/api/v1/customers/{cid}", json={"city": "B"}, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert "version 2" in stale.json()["error"]["message"]
    conflict = client.patch(f"/api/v1/customers/{cid}", json={"city": "B", "version": 1})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["field"] == "version"
    missing = client.patch(f"/api/v1/customers/{cid}", json={"city": "B"})
    assert missing.status_code == 428
    assert client.get(f"/api/v1/customers/{cid}").json()["city"] == "A"


def test_bad_input_gets_4xx_naming_the_field(client):
    unknown = client.post("/api/v1/customers", json={"family_name": "x", "favourite_colour": "red"})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "favourite_colour"
    assert "unknown field" in unknown.json()["error"]["message"]

    bad_email = client.post("/api/v1/customers", json={"email": "not-an-email"})
    assert bad_email.status_code == 422
    assert bad_email.json()["error"]["field"] == "email"

    bad_phone = client.post("/api/v1/customers", json={"phone": "12"})
    assert bad_phone.status_code == 422 and bad_phone.json()["error"]["field"] == "phone"

    wrong_type = client.post("/api/v1/customers", json={"birth_date": "yesterday"})
    assert wrong_type.status_code == 422 and wrong_type.json()["error"]["field"] == "birth_date"

    malformed = client.post("/api/v1/customers", content=b'{"email": ', headers={"Content-Type": "application/json"})
    assert malformed.status_code == 422
    assert "not valid JSON" in malformed.json()["error"]["message"]

    huge = client.post(
        "/api/v1/customers", content=b"{" + b" " * 6_000_000 + b"}", headers={"Content-Type": "application/json"}
    )
    assert huge.status_code == 413

    assert client.get("/api/v1/customers/999999").status_code == 404
    assert client.get("/api/v1/customers/abc").status_code == 422
    assert client.get("/api/v1/customers?favourite_colour=red").status_code == 422
    assert client.get("/api/v1/customers?created_at__gte=notadate").json()["error"]["field"] == "created_at"
    assert client.get("/api/v1/customers?cursor=garbage!").status_code == 422
    assert client.get("/api/v1/customers").json()["items"] == []


def test_duplicate_identity_is_409_naming_the_owner(client):
    first = _create(client, email="dup@example.jp").json()
    r = client.post("/api/v1/customers", json={"email": "DUP@example.jp"})
    assert r.status_code == 409
    assert r.json()["error"]["field"] == "email"
    assert str(first["id"]) in r.json()["error"]["message"]


def test_list_filters_sorts_and_pages_with_cursors(client):
    ids = [
        _create(
            client, email=f"p{i}@example.jp", prefecture="東京都" if i % 2 else "大阪府", tags=["VIP"] if i < 3 else []
        ).json()["id"]
        for i in range(7)
    ]
    seen, cursor = [], None
    while True:
        r = client.get("/api/v1/customers", params={"limit": 3, "sort": "id", **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200
        seen += [c["id"] for c in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(ids)
    tokyo = client.get("/api/v1/customers", params={"prefecture": "東京都"}).json()["items"]
    assert {c["id"] for c in tokyo} == {ids[i] for i in range(7) if i % 2}
    vip = client.get("/api/v1/customers", params={"tag": "VIP"}).json()["items"]
    assert {c["id"] for c in vip} == set(ids[:3])
    found = client.get("/api/v1/customers", params={"q": "p4@example"}).json()["items"]
    assert [c["id"] for c in found] == [ids[4]]
    newest = client.get("/api/v1/customers", params={"sort": "-created_at", "limit": 2}).json()
    assert [c["id"] for c in newest["items"]] == [ids[6], ids[5]]


def test_openapi_lists_the_api(client):
    spec = client.get("/openapi.json").json()
    assert "/api/v1/customers/{customer_id}/timeline" in spec["paths"]
    assert "/api/v1/orders" in spec["paths"]


def test_requests_without_token_are_401(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as anonymous:
        r = anonymous.get("/api/v1/customers")
        assert r.status_code == 401
        assert anonymous.get("/api/v1/customers", headers={"Authorization": "Bearer kz_wrong"}).status_code == 401


def test_create_with_time_zone_locale_and_attributes(client):
    r = _create(client, timezone="America/New_York", locale="en", attributes={"rank": "gold"})
    assert (r.json()["timezone"], r.json()["locale"], r.json()["attributes"]) == (
        "America/New_York",
        "en",
        {"rank": "gold"},
    )
    assert client.post("/api/v1/customers", json={"timezone": "Mars/Olympus"}).json()["error"]["field"] == "timezone"


def test_api_and_static_responses_forbid_content_sniffing(client):
    assert client.get("/api/v1/customers").headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/static/kizuna.css").headers["X-Content-Type-Options"] == "nosniff"


def test_out_of_range_ids_and_invalid_unicode_are_4xx_not_500(client):
    assert client.get("/api/v1/customers/12592048551951491072/notes").status_code in (404, 422)
    assert client.get("/api/v1/customers/9223372036854775807").status_code in (404, 422)
    assert client.post("/api/v1/customers", json={"company_id": 2**70}).status_code == 422
    r = client.post("/api/v1/companies", content='{"name": "\\ud800x"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert "invalid Unicode" in r.json()["error"]["message"]
    r = client.post(
        "/api/v1/customers", content='{"attributes": {"k": ["\\ud800"]}}', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and "attributes.k.0" in r.json()["error"]["message"]


def test_companies_and_products_accept_attributes(client):
    company = client.post("/api/v1/companies", json={"name": "絆商事", "attributes": {"tier": "A"}, "owner_id": 7314})
    assert company.status_code == 422 and company.json()["error"]["field"] == "owner_id"
    company = client.post("/api/v1/companies", json={"name": "絆商事", "attributes": {"tier": "A"}})
    assert company.status_code == 201 and company.json()["attributes"] == {"tier": "A"}
    product = client.post("/api/v1/products", json={"sku": "A1", "name": "a", "attributes": {"size": "L"}})
    assert product.status_code == 201 and product.json()["attributes"] == {"size": "L"}


def test_crafted_cursors_and_filter_values_are_422(client):
    import base64
    import json

    def cursor(*parts):
        return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")

    cid = _create(client, email="c@example.jp").json()["id"]
    assert client.get("/api/v1/customers?id__isnull=maybe").status_code == 422
    for bad in (cursor("created_at", None, 1), cursor("created_at", 123, 1), cursor("created_at", "soon", 1)):
        assert client.get("/api/v1/customers", params={"sort": "created_at", "cursor": bad}).status_code == 422
    naive = cursor("2024-01-01T00:00:00", "event", 1)
    assert client.get(f"/api/v1/customers/{cid}/timeline", params={"cursor": naive}).status_code == 422
    nul = client.post("/api/v1/customers", json={"family_name": "田\x00中"})
    assert nul.status_code == 422 and nul.json()["error"]["field"] == "family_name"


def test_email_and_phone_filters_normalise_like_stored_values(client):
    cid = _create(client, email="upper@example.com", phone="090-1234-5678").json()["id"]
    assert [c["id"] for c in client.get("/api/v1/customers?email=Upper@Example.com").json()["items"]] == [cid]
    assert [c["id"] for c in client.get("/api/v1/customers?phone=09012345678").json()["items"]] == [cid]
    assert [c["id"] for c in client.get("/api/v1/customers?email__contains=UPPER").json()["items"]] == [cid]


def test_survivor_of_a_merge_can_be_deleted_but_not_through_the_merged_id(client):
    a = _create(client, email="a@example.jp").json()["id"]
    b = _create(client, email="b@example.jp").json()["id"]
    assert client.post(f"/api/v1/customers/{a}/merge", json={"merge_id": b}).status_code == 200
    via_old = client.delete(f"/api/v1/customers/{b}", headers={"If-Match": "*"})
    assert via_old.status_code == 422 and str(a) in via_old.json()["error"]["message"]
    assert client.delete(f"/api/v1/customers/{a}", headers={"If-Match": "*"}).status_code == 204
    assert client.get(f"/api/v1/customers/{a}").status_code == 404
    assert client.get(f"/api/v1/customers/{b}").status_code == 404
