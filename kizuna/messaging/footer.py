"""The sender identity and the footer every marketing mail carries (特定電子メール法, Japan's Act on Specified
Electronic Mail): the sender's name, a postal address or a link to it, an opt-out link with a statement that the
recipient may refuse further mail, and a contact for complaints and questions.

The footer is added by the sender to every marketing mail whatever its template says, in the customer's language
(Japanese unless the customer's locale is English), so that no template can leave it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any


@dataclass(frozen=True)
class SenderIdentity:
    name: str = ""
    address: str = ""  # the From address
    reply_to: str = ""
    postal_address: str = ""
    postal_url: str = ""
    contact: str = ""  # where complaints and questions go: an address, a phone number or a URL

    @classmethod
    def of(cls, values: dict[str, Any]) -> SenderIdentity:
        return cls(
            name=str(values.get("from_name") or "").strip(),
            address=str(values.get("from_address") or "").strip(),
            reply_to=str(values.get("reply_to") or "").strip(),
            postal_address=str(values.get("postal_address") or "").strip(),
            postal_url=str(values.get("postal_url") or "").strip(),
            contact=str(values.get("complaints_contact") or "").strip(),
        )

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()

    def missing(self, kind: str) -> list[str]:
        """The settings a mail of ``kind`` needs that are not configured (empty: it may be sent)."""
        missing = [] if "@" in self.address else ["from_address"]
        if kind == "marketing":
            if not self.name:
                missing.append("from_name")
            if not (self.postal_address or self.postal_url):
                missing.append("postal_address")
            if not self.contact:
                missing.append("complaints_contact")
        return missing

    def variables(self) -> dict[str, str]:
        return {
            "name": self.name,
            "address": self.address,
            "postal_address": self.postal_address or self.postal_url,
            "contact": self.contact,
        }


_TEXT = {
    "ja": {
        "sender": "配信元",
        "postal": "所在地",
        "optout": "今後このようなメールの受信を希望されない場合は、以下のリンクから配信を停止できます。",
        "contact": "お問い合わせ・苦情の連絡先",
    },
    "en": {
        "sender": "Sent by",
        "postal": "Postal address",
        "optout": "You may refuse further mail like this at any time: unsubscribe at the link below.",
        "contact": "Questions and complaints",
    },
}


def footer(identity: SenderIdentity, unsubscribe_url: str, locale: str | None) -> tuple[str, str]:
    """(plain text, HTML) of the legal footer in the customer's language."""
    t = _TEXT["en" if (locale or "").startswith("en") else "ja"]
    postal = identity.postal_address or identity.postal_url
    text = (
        "\n\n--\n"
        f"{t['sender']}: {identity.name} <{identity.address}>\n"
        f"{t['postal']}: {postal}\n"
        f"{t['optout']}\n{unsubscribe_url}\n"
        f"{t['contact']}: {identity.contact}\n"
    )
    postal_html = (
        f'<a href="{escape(identity.postal_url)}">{escape(identity.postal_url)}</a>'
        if identity.postal_url and not identity.postal_address
        else escape(postal)
    )
    html = (
        '<div class="kizuna-footer" style="margin-top:2em;border-top:1px solid #ccc;padding-top:1em;'
        'font-size:12px;color:#555">'
        f"<p>{escape(t['sender'])}: {escape(identity.name)} &lt;{escape(identity.address)}&gt;<br>"
        f"{escape(t['postal'])}: {postal_html}</p>"
        f'<p>{escape(t["optout"])}<br><a href="{escape(unsubscribe_url)}" data-kizuna-untracked="1">'
        f"{escape(unsubscribe_url)}</a></p>"
        f"<p>{escape(t['contact'])}: {escape(identity.contact)}</p></div>"
    )
    return text, html


def append_html(html: str, fragment: str) -> str:
    """``fragment`` before ``</body>`` when there is one, else at the end."""
    lower = html.lower()
    at = lower.rfind("</body>")
    return html[:at] + fragment + html[at:] if at >= 0 else html + fragment
