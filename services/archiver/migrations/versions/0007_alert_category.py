"""Alerts keep their event's category.

Revision ID: 0007
Revises: 0006

An acknowledgement is published from the alerts table (``lifecycle.acknowledged_event``);
without the category there, it never reached routes that match on category. NULL for
alerts opened before this revision and for events without a category.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE alerts ADD COLUMN category text")


def downgrade() -> None:
    op.execute("ALTER TABLE alerts DROP COLUMN category")
