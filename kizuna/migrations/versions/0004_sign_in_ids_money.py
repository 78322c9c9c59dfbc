"""sign-in throttles; ids never reused on SQLite (AUTOINCREMENT); money as integer cents on SQLite

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 11:40:00

On SQLite every table with an integer ``id`` primary key is rebuilt with AUTOINCREMENT (found by reading the
schema, so tables added by earlier revisions are included), and money columns (NUMERIC(18, 2), stored as REAL
by SQLite) are rewritten as integer cents. PostgreSQL only gets the new table: its sequences never reuse ids
and its NUMERIC is exact.
"""
import re
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# id INTEGER NOT NULL, ... CONSTRAINT pk_x PRIMARY KEY (id): how SQLAlchemy (and Alembic batch mode) write it.
# Only INTEGER: AUTOINCREMENT exists for SQLite's rowid alias alone.
_ID_COLUMN = re.compile(r'(\n\s*"?id"?\s+INTEGER\s+NOT NULL)\s*,', re.IGNORECASE)
_PK_CONSTRAINT = re.compile(r',\s*(?:CONSTRAINT\s+"?\w+"?\s+)?PRIMARY KEY\s*\(\s*"?id"?\s*\)', re.IGNORECASE)
MONEY = {'orders': ('total_amount',), 'order_lines': ('unit_price', 'amount'), 'products': ('price',)}


def _create_throttles() -> None:
    op.create_table(
        'sign_in_throttles',
        sa.Column('key', sa.String(length=400), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('first_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_sign_in_throttles')),
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        _create_throttles()
        return
    # DROP TABLE on a parent would cascade to its children while foreign keys are enforced, and the pragma
    # only changes outside a transaction: end the driver's open one (earlier revisions' work, complete) first.
    dbapi = bind.connection.dbapi_connection
    dbapi.commit()
    bind.exec_driver_sql('PRAGMA foreign_keys=OFF')
    if bind.exec_driver_sql('PRAGMA foreign_keys').scalar():
        raise RuntimeError('could not turn off foreign keys to rebuild tables; nothing was changed')
    try:
        # One transaction for all of it. Money is converted only in tables not rebuilt yet, and both happen
        # together, so running this again after a crash (before Alembic noted the revision) changes nothing twice.
        bind.exec_driver_sql('BEGIN')
        if not bind.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sign_in_throttles'").first():
            _create_throttles()
        for name, sql in _tables_to_rebuild(bind):
            for column in MONEY.get(name, ()):
                # Rows written as REAL keep their cents (exact below 10^13, the old documented range).
                bind.exec_driver_sql(
                    f'UPDATE "{name}" SET "{column}" = CAST(ROUND("{column}" * 100) AS INTEGER)'
                    f' WHERE "{column}" IS NOT NULL'
                )
            _rebuild(bind, name, sql)
        problems = bind.exec_driver_sql('PRAGMA foreign_key_check').fetchall()
        if problems:
            raise RuntimeError(f'foreign keys broken by the rebuild: {problems[:5]}')
        dbapi.commit()
    except BaseException:
        dbapi.rollback()
        raise
    finally:
        bind.exec_driver_sql('PRAGMA foreign_keys=ON')


def _tables_to_rebuild(bind: sa.engine.Connection) -> list[tuple[str, str]]:
    """Tables with an INTEGER ``id`` primary key and no AUTOINCREMENT yet, found in the schema itself."""
    rows = bind.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    )
    return [
        (name, sql)
        for name, sql in rows
        if 'AUTOINCREMENT' not in sql.upper() and _ID_COLUMN.search(sql) and _PK_CONSTRAINT.search(sql)
    ]


def _rebuild(bind: sa.engine.Connection, name: str, sql: str) -> None:
    new_sql = _PK_CONSTRAINT.sub('', _ID_COLUMN.sub(r'\1 PRIMARY KEY AUTOINCREMENT,', sql, count=1), count=1)
    temp = f'_autoinc_{name}'
    new_sql = re.sub(r'^CREATE TABLE\s+"?\w+"?', f'CREATE TABLE "{temp}"', new_sql, count=1)
    indexes = [
        row[0]
        for row in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (name,)
        )
    ]
    columns = ', '.join(f'"{row[1]}"' for row in bind.exec_driver_sql(f'PRAGMA table_info("{name}")'))
    bind.exec_driver_sql(new_sql)
    bind.exec_driver_sql(f'INSERT INTO "{temp}" ({columns}) SELECT {columns} FROM "{name}"')
    bind.exec_driver_sql(f'DROP TABLE "{name}"')
    bind.exec_driver_sql(f'ALTER TABLE "{temp}" RENAME TO "{name}"')
    for index in indexes:
        bind.exec_driver_sql(index)
    # The highest id so far is used: the next row gets a new one even if the newest row is deleted first.
    bind.exec_driver_sql(
        f'INSERT INTO sqlite_sequence (name, seq) SELECT ?, COALESCE(MAX(id), 0) FROM "{name}"', (name,)
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        for table, column in (
            ('orders', 'total_amount'),
            ('order_lines', 'unit_price'),
            ('order_lines', 'amount'),
            ('products', 'price'),
        ):
            bind.exec_driver_sql(f'UPDATE {table} SET {column} = {column} / 100.0 WHERE {column} IS NOT NULL')
    op.drop_table('sign_in_throttles')
