"""What stays after a customer is deleted (erasure: GDPR art. 17, APPI 利用停止・消去), and why.

``customers.service.delete_customer`` deletes the customer row; the database cascades to every table whose
``customer_id`` is a foreign key with ``ON DELETE CASCADE``, and empties the ones with ``SET NULL`` (a deal, a
suppression: the row is the company's, the link to the person goes). The tables below keep rows that name the
deleted id, each by design; tests/privacy/test_erasure.py deletes a customer with a row in every table and fails
when any other table still names the id.
"""

from __future__ import annotations

KEPT_AFTER_DELETE: dict[str, str] = {
    "audit_log": "the record of what was done to whom, including the deletion itself; it holds the id and what "
    "changed, and is kept as evidence (it is not a copy of the customer)",
    "outbox": "events already emitted (customer.created ... customer.deleted) describe the past and are what "
    "webhooks and journeys were told; the customer.deleted message must reach them after the row is gone",
    "third_party_provisions": "APPI requires the provider to keep the record of each hand-over to a third party "
    "for three years, deleted customer or not; the retention purge removes it then",
}
# Tables whose rows stay after the customer is deleted, with the link to the person emptied (ON DELETE SET NULL).
UNLINKED_ON_DELETE: dict[str, str] = {
    "deals": "a deal is the company's sales record (its amount, stage history and forecast); it may also belong to "
    "a company account; the link to the person goes",
    "suppressions": "an address that bounced or unsubscribed must stay suppressed, or a re-import of the same "
    "address would mail it again (特定電子メール法); the link to the deleted record goes",
}
