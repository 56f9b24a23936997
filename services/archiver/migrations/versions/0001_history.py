"""History tables: check results, alert events, deliveries.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # stream_id is the Redis stream entry id: a redelivered batch hits the
    # primary key and is skipped, so archiving is idempotent.
    op.execute("""
        CREATE TABLE check_results (
            stream_id    text PRIMARY KEY,
            event_id     text NOT NULL,
            tenant       text NOT NULL,
            service      text NOT NULL,
            check_name   text NOT NULL,
            tier         text NOT NULL,
            status       text NOT NULL,
            latency_ms   double precision NOT NULL,
            details      jsonb NOT NULL DEFAULT '{}',
            observed_at  timestamptz NOT NULL,
            archived_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX check_results_series
            ON check_results (tenant, service, check_name, observed_at);
        CREATE INDEX check_results_observed ON check_results (observed_at);

        CREATE TABLE alert_events (
            stream_id    text PRIMARY KEY,
            event_id     text NOT NULL,
            fingerprint  text NOT NULL,
            rule         text NOT NULL,
            tenant       text NOT NULL,
            service      text NOT NULL,
            severity     text NOT NULL,
            state        text NOT NULL,
            title        text NOT NULL,
            message      text NOT NULL,
            value        double precision,
            threshold    double precision,
            labels       jsonb NOT NULL DEFAULT '{}',
            started_at   timestamptz NOT NULL,
            ended_at     timestamptz,
            source       text NOT NULL,
            archived_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX alert_events_fingerprint ON alert_events (fingerprint, started_at);
        CREATE INDEX alert_events_started ON alert_events (started_at);

        CREATE TABLE deliveries (
            stream_id       text PRIMARY KEY,
            event_id        text NOT NULL,
            alert_event_id  text NOT NULL,
            fingerprint     text NOT NULL,
            tenant          text NOT NULL,
            channel         text NOT NULL,
            channel_type    text NOT NULL,
            attempt         integer NOT NULL,
            outcome         text NOT NULL,
            status_code     integer,
            latency_ms      double precision NOT NULL,
            error           text NOT NULL,
            at              timestamptz NOT NULL,
            archived_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX deliveries_alert ON deliveries (alert_event_id);
        CREATE INDEX deliveries_at ON deliveries (at);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE deliveries; DROP TABLE alert_events; DROP TABLE check_results;")
