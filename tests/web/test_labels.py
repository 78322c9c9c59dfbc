"""Every code a page shows reads as text in both languages: order statuses, channels, event types, purposes..."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from sqlalchemy import select

from kizuna.customers import consent, identities
from kizuna.customers.models import Consent, Customer
from kizuna.customers.schemas import Channel, ConsentCreate, ConsentStatus
from kizuna.customers.timeline import KINDS
from kizuna.demo import EVENT_TYPES, load_demo
from kizuna.events.models import Event
from kizuna.events.schemas import EventChannel
from kizuna.orders.models import Order
from kizuna.orders.schemas import OrderStatus
from kizuna.web.i18n import LANGUAGES, catalog
from kizuna.web.labels import GROUPS, humanise, label_for
from kizuna.web.ui_customer_forms import CONSENT_CHANNELS, CONSENT_METHODS, CONSENT_PURPOSES

# Each group with the values the models and schemas allow, derived from them (never a hand list).
DECLARED = {
    "order_status": OrderStatus.__args__,
    "event_channel": EventChannel.__args__,
    "consent_channel": Channel.__args__,
    "consent_status": ConsentStatus.__args__,
    "consent_purpose": (consent.MARKETING, ConsentCreate.model_fields["purpose"].default),
    "identity_kind": tuple(identities.KINDS),
    "timeline_kind": KINDS,
    "event_type": tuple(t for types in EVENT_TYPES.values() for t in types),
    # The choices of the 360 page's consent form.
    "consent_method": CONSENT_METHODS,
}
DECLARED["consent_purpose"] += CONSENT_PURPOSES
DECLARED["consent_channel"] += CONSENT_CHANNELS


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("group", sorted(DECLARED))
def test_every_declared_value_has_a_label_in_every_language(group, lang):
    texts = catalog(lang)
    missing = [code for code in DECLARED[group] if f"{GROUPS[group]}.{code}" not in texts]
    assert missing == [], f"{group} values without a label in {lang}: {missing}"


def test_both_catalogs_label_the_same_codes():
    ja = {k for k in catalog("ja") if k.startswith("label.")}
    en = {k for k in catalog("en") if k.startswith("label.")}
    assert ja == en


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_consent_form_options_read_as_the_labels_do(lang):
    """The form offers a purpose or method under the same text the page then shows for it."""
    texts = catalog(lang)
    for form_prefix, group in (("cform.purpose", "consent_purpose"), ("cform.method", "consent_method")):
        for key in (k for k in texts if k.startswith(form_prefix + ".")):
            assert texts[key] == label_for(lang, group, key.removeprefix(form_prefix + ".")), key


def test_unknown_codes_are_humanised_not_shown_raw():
    assert label_for("ja", "event_type", "cart_add") == "カート追加"
    assert label_for("en", "event_type", "Order Completed") == "Order completed"  # spelt differently, same code
    assert label_for("en", "event_type", "wishlist_add") == "Wishlist Add"
    assert label_for("ja", "event_type", "wishlist_add") == "Wishlist Add"
    assert label_for("ja", "event_type", "来店") == "来店"
    assert label_for("ja", "order_channel", "rakuten") == "楽天市場"
    assert label_for("ja", "identity_kind", "external_id:shopify") == "外部ID (shopify)"
    assert humanise("checkout.step-2") == "Checkout Step 2"


def visible_text(page: str) -> str:
    """What a person reads: the page without tags, attributes, the head and scripts."""
    body = page.split("<body", 1)[1]
    body = re.sub(r"<script.*?</script>", " ", body, flags=re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", body))


@pytest.fixture
def demo_customer(db) -> tuple[int, set[str]]:
    """A demo customer with the most touchpoints, and every code their rows hold."""
    import datetime as dt

    from kizuna.db import transaction

    load_demo(db, customers=60, seed=7, as_of=dt.date(2025, 1, 1))
    with transaction(db) as s:
        counts: dict[int, int] = {}
        for (customer_id,) in s.execute(select(Event.customer_id)):
            counts[customer_id] = counts.get(customer_id, 0) + 1
        for (customer_id,) in s.execute(select(Order.customer_id)):
            counts[customer_id] = counts.get(customer_id, 0) + 3
        with_line = set(s.scalars(select(Consent.customer_id).where(Consent.channel == "line")))
        best = max(counts, key=lambda cid: (cid in with_line, counts[cid], -cid))
        codes: set[str] = set()
        for row in s.execute(select(Order.status, Order.channel).where(Order.customer_id == best)):
            codes |= {v for v in row if v}
        for row in s.execute(select(Event.type, Event.channel).where(Event.customer_id == best)):
            codes |= set(row)
        for row in s.execute(
            select(Consent.channel, Consent.purpose, Consent.status, Consent.method).where(Consent.customer_id == best)
        ):
            codes |= set(row)
        person = s.get(Customer, best)
        codes |= {person.lifecycle_stage, person.source}
    return best, codes


def test_japanese_360_page_of_a_demo_customer_shows_no_raw_code(ui_client, demo_customer):
    customer_id, codes = demo_customer
    assert {"completed", "marketing", "email"} <= codes and any("_" in c for c in codes)
    ui = ui_client("viewer")
    text = visible_text(ui.get(f"/customers/{customer_id}").text)
    shown = sorted(code for code in codes if re.search(rf"(?<![\w/.@-]){re.escape(code)}(?![\w/.@-])", text))
    assert shown == [], f"raw codes in the Japanese 360 page: {shown}"
    # and the English page shows no snake_case code either
    ui.get("/lang/en")
    english = visible_text(ui.get(f"/customers/{customer_id}").text)
    assert [c for c in codes if "_" in c and c in english] == []
