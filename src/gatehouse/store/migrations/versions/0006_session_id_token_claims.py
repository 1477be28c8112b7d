"""sessions: the verified ID-token claims, stored beside the ID token

Revision ID: 0006
Revises: 0005
Create Date: 2027-01-10 10:00:00

The session keeper compares a refreshed ID token with the claims of the original one (OIDC Core
12.2). Those claims are now stored as the validator returned them (encrypted, context
``session.id_token_claims``) instead of being decoded again from the stored token. Sessions
from before this revision have none: at their next refresh they re-authenticate (silently,
``prompt=none``, while the IdP session lasts).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.add_column(sa.Column("id_token_claims_enc", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_column("id_token_claims_enc")
