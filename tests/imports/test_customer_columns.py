"""The customer import's field list is derived from its alias list; this test notices a schema field left out."""

from __future__ import annotations

from kizuna.customers.importer.columns import ALIASES, FIELDS, WRITTEN
from kizuna.customers.models import Customer
from kizuna.customers.schemas import CustomerCreate

# Fields of CustomerCreate an import does not fill from a column of its own: the CRM's own settings, and
# attributes (filled from unknown columns with --extra-to-attributes).
NOT_FROM_COLUMNS = {"company_id", "owner_id", "lifecycle_stage", "timezone", "locale", "attributes"}


def test_every_customer_field_has_an_alias_list_or_is_named_as_not_imported():
    assert set(CustomerCreate.model_fields) - set(ALIASES) == NOT_FROM_COLUMNS


def test_what_an_import_writes_are_customer_columns():
    columns = set(Customer.__table__.c.keys())
    assert set(WRITTEN) <= columns and set(FIELDS) <= columns
