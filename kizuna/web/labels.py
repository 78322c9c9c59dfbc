"""Readable labels for the codes Kizuna stores: order statuses, channels, event types, consent purposes...

Every page shows a code through ``label(group, code)`` (a Jinja global), so one code reads the same everywhere.
The texts live in the catalogs (``locale/<lang>/labels.json`` as ``label.<group>.<code>``; a few groups reuse
older keys, see ``GROUPS``). Some codes are open-ended (anyone may send an event ``Order Completed`` or an order
channel ``rakuten``): a code without a label is shown humanised (``cart_add`` -> ``Cart Add``), never as raw
snake_case; Japanese text sent as a code (``来店``) is left as sent.
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import pass_context

from kizuna.web.i18n import catalog

# group -> the catalog key prefix of its labels (most are ``label.<group>``; older ones kept their keys).
GROUPS: dict[str, str] = {
    "timeline_kind": "kind",
    "consent_channel": "channel",
    "consent_status": "consent",
    "identity_kind": "identity",
    "order_status": "label.order_status",
    "order_channel": "label.order_channel",
    "event_type": "label.event_type",
    "event_channel": "label.event_channel",
    "event_property": "label.event_property",
    "consent_purpose": "label.consent_purpose",
    "consent_method": "label.consent_method",
    "merge_reason": "label.merge_reason",
    "customer_source": "label.customer_source",
}
# Which group names the ``channel`` of a timeline item, by the item's kind.
TIMELINE_CHANNEL_GROUP = {"event": "event_channel", "order": "order_channel", "consent": "consent_channel"}
_SEPARATORS = re.compile(r"[\s_.:/-]+")


def normal_code(code: str) -> str:
    """``Order Completed``, ``order-completed`` and ``order_completed`` are one code: ``order_completed``."""
    return _SEPARATORS.sub("_", code.strip()).strip("_").casefold()


def humanise(code: str) -> str:
    """``cart_add`` -> ``Cart Add``: the fallback for a code without a label."""
    words = [w for w in _SEPARATORS.split(code.strip()) if w]
    return " ".join(w[:1].upper() + w[1:] for w in words) or code


def label_for(lang: str, group: str, code: Any) -> str:
    """The label of ``code`` in ``group`` in ``lang``; a code without one humanised."""
    if code is None or code == "":
        return ""
    text = str(code)
    prefix = GROUPS[group]
    texts = catalog(lang)
    for candidate in (text, normal_code(text)):
        if f"{prefix}.{candidate}" in texts:
            return texts[f"{prefix}.{candidate}"]
    if group == "identity_kind" and ":" in text:
        # external_id:shopify -> 外部ID (shopify)
        kind, _, source = text.partition(":")
        return f"{label_for(lang, group, kind)} ({source})"
    return humanise(text)


@pass_context
def label(context: Any, group: str, code: Any) -> str:
    """Jinja global: ``label("order_status", o.status)`` in the page's language."""
    return label_for(context.get("lang") or "ja", group, code)


@pass_context
def timeline_channel(context: Any, kind: str, code: Any) -> str:
    """Jinja global: the label of a timeline item's channel (an event's, an order's or a consent's)."""
    group = TIMELINE_CHANNEL_GROUP.get(kind)
    if group is None:
        return humanise(str(code)) if code else ""
    return label_for(context.get("lang") or "ja", group, code)
