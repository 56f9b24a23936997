"""Partitioned history, metric samples, alert lifecycle, audit log, hourly rollups.

Revision ID: 0002
Revises: 0001

check_results becomes range-partitioned by UTC day on observed_at: dropping a
whole day is a catalogue operation (constant time), unlike DELETE + VACUUM.
A partitioned table's unique key must contain the partition key, so the
idempotency key is (stream_id, observed_at); a redelivered entry carries the
same observed_at and still collides. Partitions are created by the archiver
(services/archiver/partitions.py) ahead of time and for any day it writes.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE check_results RENAME TO check_results_unpartitioned;
        ALTER INDEX check_results_series RENAME TO check_results_unpartitioned_series;
        ALTER INDEX check_results_observed RENAME TO check_results_unpartitioned_observed;
        ALTER TABLE check_results_unpartitioned
            RENAME CONSTRAINT check_results_pkey TO check_results_unpartitioned_pkey;

        CREATE TABLE check_results (
            stream_id    text NOT NULL,
            event_id     text NOT NULL,
            tenant       text NOT NULL,
            service      text NOT NULL,
            check_name   text NOT NULL,
            tier         text NOT NULL,
            status       text NOT NULL,
            latency_ms   double precision NOT NULL,
            details      jsonb NOT NULL DEFAULT '{}',
            observed_at  timestamptz NOT NULL,
            archived_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (stream_id, observed_at)
        ) PARTITION BY RANGE (observed_at);
        CREATE INDEX check_results_series
            ON check_results (tenant, service, check_name, observed_at);

        CREATE TABLE metric_samples (
            stream_id    text NOT NULL,
            event_id     text NOT NULL,
            tenant       text NOT NULL,
            service      text NOT NULL,
            metric       text NOT NULL,
            value        double precision NOT NULL,
            labels       jsonb NOT NULL DEFAULT '{}',
            observed_at  timestamptz NOT NULL,
            archived_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (stream_id, observed_at)
        ) PARTITION BY RANGE (observed_at);
        CREATE INDEX metric_samples_series
            ON metric_samples (tenant, service, metric, observed_at);

        -- Per check and UTC hour. Latencies as a fixed-bucket histogram
        -- (services/archiver/histogram.py): unlike stored percentiles it can be
        -- added up, so any range of hours yields percentiles.
        CREATE TABLE check_rollups (
            tenant       text NOT NULL,
            service      text NOT NULL,
            check_name   text NOT NULL,
            hour         timestamptz NOT NULL,
            executions   bigint NOT NULL,
            successes    bigint NOT NULL,
            failures     bigint NOT NULL,
            latency_sum  double precision NOT NULL,
            latency_min  double precision NOT NULL,
            latency_max  double precision NOT NULL,
            latency_buckets bigint[] NOT NULL,
            PRIMARY KEY (tenant, service, check_name, hour)
        );
        CREATE INDEX check_rollups_hour ON check_rollups (hour);

        -- Per check and UTC day, counts only: uptime over 7 or 30 days reads
        -- whole days here and only the partial days from check_rollups.
        CREATE TABLE check_rollups_daily (
            tenant       text NOT NULL,
            service      text NOT NULL,
            check_name   text NOT NULL,
            day          timestamptz NOT NULL,
            executions   bigint NOT NULL,
            successes    bigint NOT NULL,
            failures     bigint NOT NULL,
            PRIMARY KEY (tenant, service, check_name, day)
        );
        CREATE INDEX check_rollups_daily_day ON check_rollups_daily (day);

        CREATE FUNCTION vigil_add_buckets(a bigint[], b bigint[]) RETURNS bigint[]
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
                SELECT array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i)
                FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)
            $$;

        -- One row per alert (fingerprint + start) and its lifecycle.
        CREATE TABLE alerts (
            id               bigserial PRIMARY KEY,
            fingerprint      text NOT NULL,
            started_at       timestamptz NOT NULL,
            rule             text NOT NULL,
            tenant           text NOT NULL,
            service          text NOT NULL,
            severity         text NOT NULL,
            title            text NOT NULL,
            labels           jsonb NOT NULL DEFAULT '{}',
            state            text NOT NULL,
            updated_at       timestamptz NOT NULL,
            acknowledged_at  timestamptz,
            acknowledged_by  text,
            resolved_at      timestamptz,
            resolved_by      text,
            suppressed_until timestamptz,
            UNIQUE (fingerprint, started_at)
        );
        CREATE INDEX alerts_started ON alerts (started_at);
        CREATE INDEX alerts_open ON alerts (state)
            WHERE state IN ('active', 'acknowledged', 'suppressed');

        CREATE TABLE alert_transitions (
            id          bigserial PRIMARY KEY,
            alert_id    bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
            from_state  text,
            to_state    text NOT NULL,
            at          timestamptz NOT NULL,
            by          text NOT NULL,
            note        text NOT NULL DEFAULT ''
        );
        CREATE INDEX alert_transitions_alert ON alert_transitions (alert_id, at);
        CREATE INDEX alert_transitions_at ON alert_transitions (at);

        CREATE TABLE audit_log (
            id       bigserial PRIMARY KEY,
            at       timestamptz NOT NULL,
            actor    text NOT NULL,
            action   text NOT NULL,
            target   text NOT NULL,
            details  jsonb NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_log_at ON audit_log (at);
    """)
    # Move existing history into day partitions, then drop the old table.
    op.execute("""
        DO $$
        DECLARE day date;
        BEGIN
            FOR day IN
                SELECT DISTINCT (observed_at AT TIME ZONE 'UTC')::date
                FROM check_results_unpartitioned
            LOOP
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF check_results FOR VALUES FROM (%L) TO (%L)',
                    'check_results_p' || to_char(day, 'YYYYMMDD'),
                    day::timestamp AT TIME ZONE 'UTC',
                    (day + 1)::timestamp AT TIME ZONE 'UTC');
            END LOOP;
        END $$;
        INSERT INTO check_results SELECT * FROM check_results_unpartitioned;
        DROP TABLE check_results_unpartitioned;
    """)


def downgrade() -> None:
    op.execute("""
        DROP TABLE audit_log;
        DROP TABLE alert_transitions;
        DROP TABLE alerts;
        DROP FUNCTION vigil_add_buckets(bigint[], bigint[]);
        DROP TABLE check_rollups_daily;
        DROP TABLE check_rollups;
        DROP TABLE metric_samples;
        CREATE TABLE check_results_flat (LIKE check_results INCLUDING DEFAULTS);
        INSERT INTO check_results_flat SELECT * FROM check_results;
        DROP TABLE check_results;
        ALTER TABLE check_results_flat RENAME TO check_results;
        ALTER TABLE check_results ADD PRIMARY KEY (stream_id);
        CREATE INDEX check_results_series
            ON check_results (tenant, service, check_name, observed_at);
        CREATE INDEX check_results_observed ON check_results (observed_at);
    """)
