"""Configuration managed through the console API: rules, silences, maintenance
windows, channels and routes.

Revision ID: 0006
Revises: 0005

One table for every kind: each row is a JSON body validated by the same msgspec types
the YAML file uses. ``tenant`` NULL means the object belongs to no single tenant.
``console_generation`` counts changes; every change bumps it in its own transaction,
so the snapshot published to Redis carries a number that orders snapshots.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE console_objects (
            kind        text NOT NULL
                        CHECK (kind IN ('rule', 'silence', 'maintenance', 'channel', 'route')),
            name        text NOT NULL,
            tenant      text,
            body        jsonb NOT NULL,
            enabled     boolean NOT NULL DEFAULT true,
            version     integer NOT NULL DEFAULT 1,
            updated_by  text NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (kind, name)
        );
        CREATE TABLE console_generation (
            id          boolean PRIMARY KEY DEFAULT true CHECK (id),
            generation  bigint NOT NULL
        );
        INSERT INTO console_generation (generation) VALUES (0);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE console_generation; DROP TABLE console_objects")
