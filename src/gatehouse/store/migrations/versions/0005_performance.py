"""performance: indexes for the users page and user search

Revision ID: 0005
Revises: 0001
Create Date: 2026-12-01 10:00:00

``domain.users.search_users`` sorts by username, email, creation and last sign-in and matches
prefixes of username, email and lower(display name); without these indexes each of those is a
full scan, which at 100,000 users costs tens of milliseconds a page (bench/users_scale.py).

PostgreSQL answers ``LIKE 'x%'`` from a btree index only with ``*_pattern_ops`` (or the C
collation), so the prefix indexes use them and work under any database collation. SQLite turns
the prefix into a range (see ``_starts_with``), which the plain and expression indexes serve.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ORDER_INDEXES = {
    "ix_users_created_at_id": ["created_at", "id"],
    "ix_users_last_sign_in_at_id": ["last_sign_in_at", "id"],
    "ix_users_email_key_id": ["email_key", "id"],
}


def upgrade() -> None:
    for name, columns in _ORDER_INDEXES.items():
        op.create_index(name, "users", columns)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_users_username_key_prefix ON users (username_key varchar_pattern_ops)"
        )
        op.execute(
            "CREATE INDEX ix_users_email_key_prefix ON users (email_key varchar_pattern_ops)"
        )
        op.execute(
            "CREATE INDEX ix_users_display_name_prefix "
            "ON users (lower(display_name) text_pattern_ops)"
        )
    else:
        op.create_index("ix_users_display_name_prefix", "users", [sa.text("lower(display_name)")])


def downgrade() -> None:
    op.drop_index("ix_users_display_name_prefix", table_name="users")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_users_email_key_prefix", table_name="users")
        op.drop_index("ix_users_username_key_prefix", table_name="users")
    for name in reversed(_ORDER_INDEXES):
        op.drop_index(name, table_name="users")
