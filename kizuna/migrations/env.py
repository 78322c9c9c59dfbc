"""Alembic environment: runs on the engine Kizuna hands over (``kizuna init`` / ``kizuna.db.migrate``)."""

import sqlalchemy as sa
from alembic import context

import kizuna.models  # noqa: F401  (registers every table on the metadata)
from kizuna.db import Base, UTCDateTime, get_engine

config = context.config


def render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    # Revisions must not import Kizuna: render our TypeDecorators as the plain types they store.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, sa.JSON):
        return "sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')"
    return False


engine = config.attributes.get("engine") or get_engine()

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
