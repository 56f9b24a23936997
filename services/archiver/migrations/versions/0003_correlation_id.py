"""Correlation ids on alert events and deliveries.

Revision ID: 0003
Revises: 0002

One id finds the whole story: the check result's event_id is the alert event's
correlation_id, and every delivery of that alert carries it on.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE alert_events ADD COLUMN correlation_id text NOT NULL DEFAULT '';
        ALTER TABLE deliveries ADD COLUMN correlation_id text NOT NULL DEFAULT '';
        CREATE INDEX alert_events_correlation ON alert_events (correlation_id)
            WHERE correlation_id <> '';
        CREATE INDEX deliveries_correlation ON deliveries (correlation_id)
            WHERE correlation_id <> '';
    """)


def downgrade() -> None:
    op.execute("""
        ALTER TABLE deliveries DROP COLUMN correlation_id;
        ALTER TABLE alert_events DROP COLUMN correlation_id;
    """)
