"""Rollups off the write path: hours waiting to be rolled up, a BRIN index to find them.

Revision ID: 0004
Revises: 0003

A writer no longer folds each batch into check_rollups (an UPSERT per check and
batch, 4x the cost of the COPY itself). It notes the hours its batch touched in
check_rollups_pending, in the same transaction as the rows; rollups.refresh
recomputes those hours from the raw rows. BRIN on observed_at finds an hour's
rows for a few pages of index, and costs the writer next to nothing: rows arrive
roughly in time order.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        -- One row per batch and hour it touched (no unique key: concurrent writers
        -- never wait on each other here); refresh deletes the rows it has seen.
        CREATE TABLE check_rollups_pending (
            id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            hour  timestamptz NOT NULL
        );
        CREATE INDEX check_results_observed_brin ON check_results USING brin (observed_at);
    """)


def downgrade() -> None:
    op.execute("""
        DROP INDEX check_results_observed_brin;
        DROP TABLE check_rollups_pending;
    """)
