"""audit: indexes for the console's home page

Revision ID: 0011
Revises: 0006
Create Date: 2027-02-01 10:00:00

The home page counts sign-ins per hour and failures by reason over the last day, and lists
the newest problems (``domain/dashboard.py``). ``(action, outcome, at, reason)`` answers the
first two from the index alone (the queries name the outcomes, so each (action, outcome) pair
is one range on ``at``) and the per-action "newest failures" lists by a backward range scan;
``(outcome, at)`` serves "the newest warnings". Without them each is a scan of the whole audit
log, which Gatehouse never prunes (bench/home_page.py: 100,000 rows).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_audit_events_action_outcome_at",
        "audit_events",
        ["action", "outcome", "at", "reason"],
    )
    op.create_index("ix_audit_events_outcome_at", "audit_events", ["outcome", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_outcome_at", table_name="audit_events")
    op.drop_index("ix_audit_events_action_outcome_at", table_name="audit_events")
