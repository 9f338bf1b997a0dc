-- Data quality: counts per rule, per source system and per minute.
--
-- The business need (background: the KPI scorecard's "DQ pass rate >= 99%"
-- and "DQ coverage"; the dbt checks not_null / unique / accepted_values /
-- accepted_range / positive amounts run every 15 minutes; "if an event is
-- invalid: count a metric with the error type, alert if the rate exceeds a
-- threshold"): payments from several upstream systems arrive on one topic,
-- and the data team wants, continuously rather than every 15 minutes, how
-- many rows broke each rule, per upstream system and minute, and the pass
-- rate — without stopping or dropping anything.
--
-- What it shows:
--   * one count per rule with count(*) FILTER (WHERE …), plus count(*) -
--     count(DISTINCT payment_id) for uniqueness within the minute;
--   * 1-minute TUMBLE windows per source system with EMIT ON WINDOW CLOSE:
--     a minute's scorecard row is published once, final, when the
--     watermark (1 minute of lateness) passes its end; later rows for it
--     are in streamlake.late_events;
--   * a running scorecard per source system (not windowed: late rows count);
--   * records that are not even valid JSON for the columns are the
--     "schema" rule: they are rows of streamlake.dead_letters, counted with
--       SELECT source, count(*) FROM streamlake.dead_letters GROUP BY source;
--   EXPECT constraints (SQL.md, later) would declare the rules on the view
--   itself and count violations in streamlake.data_quality; not built yet,
--   so the rules are written as FILTER clauses.
--
-- {{BROKER}} is the Kafka bootstrap address and {{PAYMENTS_TOPIC}} the topic
-- (the test substitutes both).

CREATE SOURCE payments (
    payment_id  VARCHAR,
    src_system  VARCHAR,
    merchant    VARCHAR,
    amount      NUMERIC(12, 2),
    currency    VARCHAR,
    status      VARCHAR,
    ts          TIMESTAMPTZ,
    WATERMARK FOR ts AS ts - INTERVAL '1 minute'
)
WITH (
    connector = 'kafka',
    topic = '{{PAYMENTS_TOPIC}}',
    properties.bootstrap.server = '{{BROKER}}',
    scan.startup.mode = 'earliest'
) FORMAT PLAIN ENCODE JSON;

-- Per source system and minute, final when the minute closes.
CREATE MATERIALIZED VIEW dq_payments_1m AS
SELECT src_system, window_start, window_end,
       count(*)                                                   AS rows_checked,
       count(*) FILTER (WHERE payment_id IS NULL)                 AS payment_id_null,
       count(*) - count(DISTINCT payment_id)
         - count(*) FILTER (WHERE payment_id IS NULL)             AS payment_id_duplicate,
       count(*) FILTER (WHERE amount IS NULL)                     AS amount_null,
       count(*) FILTER (WHERE amount <= 0 OR amount > 10000)      AS amount_out_of_range,
       count(*) FILTER (WHERE currency IS NULL
                           OR currency NOT IN ('EUR', 'USD', 'GBP')) AS currency_not_accepted,
       count(*) FILTER (WHERE status IS NULL
                           OR status NOT IN ('authorized', 'captured', 'refunded', 'failed'))
                                                                  AS status_not_accepted,
       count(*) FILTER (WHERE payment_id IS NOT NULL
                          AND amount > 0 AND amount <= 10000
                          AND currency IN ('EUR', 'USD', 'GBP')
                          AND status IN ('authorized', 'captured', 'refunded', 'failed'))
                                                                  AS rows_passed
FROM TUMBLE(payments, ts, INTERVAL '1 minute')
GROUP BY src_system, window_start, window_end
EMIT ON WINDOW CLOSE;

-- Running scorecard per source system, late rows included.
CREATE MATERIALIZED VIEW dq_payments_total AS
SELECT src_system,
       count(*) AS rows_checked,
       count(*) FILTER (WHERE payment_id IS NULL)            AS payment_id_null,
       count(*) FILTER (WHERE amount IS NULL)                AS amount_null,
       count(*) FILTER (WHERE amount <= 0 OR amount > 10000) AS amount_out_of_range,
       count(*) FILTER (WHERE currency IS NULL
                           OR currency NOT IN ('EUR', 'USD', 'GBP')) AS currency_not_accepted,
       count(*) FILTER (WHERE ts IS NULL)                    AS ts_null,
       round(100.0 * count(*) FILTER (WHERE payment_id IS NOT NULL
                          AND amount > 0 AND amount <= 10000
                          AND currency IN ('EUR', 'USD', 'GBP')
                          AND status IN ('authorized', 'captured', 'refunded', 'failed'))
             / count(*), 2)                                   AS pass_rate_pct
FROM payments
GROUP BY src_system;
