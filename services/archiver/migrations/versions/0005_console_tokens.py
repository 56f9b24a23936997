"""API tokens of the operations console.

Revision ID: 0005
Revises: 0004

Only a SHA-256 of each token is kept: a leaked table grants nothing. ``tenant`` NULL
means the token sees every tenant.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE api_tokens (
            id           bigserial PRIMARY KEY,
            name         text NOT NULL,
            token_hash   text NOT NULL UNIQUE,
            role         text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
            tenant       text,
            created_by   text NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            last_used_at timestamptz,
            revoked_at   timestamptz
        );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE api_tokens")
