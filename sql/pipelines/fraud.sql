-- Fraud rules over card transactions.
--
-- The business need (background: the transaction-processing and
-- fraud-detector jobs): card transactions arrive on Kafka keyed by
-- customer; for each one the fraud team wants rules evaluated continuously,
-- with per-customer state that survives restarts:
--   FR-001 high value: an amount far from what this customer usually spends
--          (z-score of the amount against the customer's count, mean and
--          standard deviation; |z| > 3 raises an alert);
--   FR-002 velocity: too many transactions on one card within 10 minutes
--          (a sliding window, re-evaluated every minute);
--   FR-005 blacklist: a transaction by a customer on the blacklist.
-- Alerts are rows of views the alerting side reads (or subscribes to).
--
-- What it shows:
--   * deduplication of redelivered transactions (first delivery per txn_id);
--   * running per-key statistics (count, avg, stddev_samp) joined back to
--     the stream: each transaction is scored against its customer's current
--     statistics. This is the batch-equivalent meaning: the statistics
--     include every transaction received so far (the scored one and later
--     ones too), so an alert can appear or disappear as more history
--     arrives — unlike a keyed process function that scores each event
--     against the state as of its arrival;
--   * HOP(transactions_unique, ts, 1 minute, 10 minutes): sliding windows (one
--     operator, not one copy of the input per step), updated as events
--     arrive so that an alert fires without waiting for the window to close;
--     the watermark (2 minutes of lateness) closes windows and releases
--     their state; a transaction for a closed window goes to
--     streamlake.late_events;
--   * a reference table joined with a plain JOIN. A plain join is
--     batch-equivalent: putting a customer on the blacklist also flags
--     their past transactions, and removing them clears those alerts. A
--     lookup join (`JOIN blacklist FOR SYSTEM_TIME AS OF PROCTIME()`, each
--     transaction checked against the blacklist as it is when the
--     transaction arrives, past alerts never revised) is what a streaming
--     fraud job usually does; it is not built yet, so this pipeline uses the
--     plain join and gets the retroactive behaviour;
--   * malformed records in streamlake.dead_letters, not lost.
--
-- {{BROKER}} is the Kafka bootstrap address and {{TRANSACTIONS_TOPIC}} the
-- topic (the test substitutes both).

CREATE TABLE blacklist (
    customer_id VARCHAR PRIMARY KEY,
    reason      VARCHAR,
    listed_on   DATE
);
INSERT INTO blacklist VALUES ('C-9', 'chargeback fraud', DATE '2025-11-02');

CREATE SOURCE transactions (
    txn_id      VARCHAR,
    customer_id VARCHAR,
    card_id     VARCHAR,
    store_id    VARCHAR,
    amount      NUMERIC(12, 2),
    ts          TIMESTAMPTZ,
    WATERMARK FOR ts AS ts - INTERVAL '2 minutes'
)
WITH (
    connector = 'kafka',
    topic = '{{TRANSACTIONS_TOPIC}}',
    properties.bootstrap.server = '{{BROKER}}',
    scan.startup.mode = 'earliest'
) FORMAT PLAIN ENCODE JSON;

-- The feed is at-least-once: a redelivered transaction must not count
-- twice in a profile or a velocity window. First delivery per txn_id.
-- (Written with ROW_NUMBER: the DISTINCT ON (txn_id) form does not pass the
-- watermark on to the windows over it yet.)
CREATE MATERIALIZED VIEW transactions_unique AS
SELECT txn_id, customer_id, card_id, store_id, amount, ts
FROM (
    SELECT txn_id, customer_id, card_id, store_id, amount, ts,
           ROW_NUMBER() OVER (PARTITION BY txn_id ORDER BY ts) AS rn
    FROM transactions
    WHERE txn_id IS NOT NULL
) AS t
WHERE rn = 1;

-- Per-customer spending profile (Welford's count/mean/stddev, as SQL).
CREATE MATERIALIZED VIEW customer_stats AS
SELECT customer_id,
       count(amount)       AS n,
       avg(amount)         AS mean_amount,
       stddev_samp(amount) AS sd_amount
FROM transactions_unique
WHERE customer_id IS NOT NULL
GROUP BY customer_id;

-- FR-001: |z| > 3 against the customer's profile, once the profile has at
-- least 8 transactions. Written without a division in the condition
-- (|amount - mean| > 3 * sd) so that a constant spender (sd = 0) is simply
-- never flagged.
CREATE MATERIALIZED VIEW high_value_alerts AS
SELECT t.txn_id, t.customer_id, t.card_id, t.amount, t.ts,
       s.n, s.mean_amount, s.sd_amount,
       (t.amount - s.mean_amount) / s.sd_amount AS z
FROM transactions_unique t
JOIN customer_stats s ON t.customer_id = s.customer_id
WHERE s.n >= 8 AND s.sd_amount > 0
  AND abs(t.amount - s.mean_amount) > 3 * s.sd_amount;

-- FR-002: transactions per card in 10-minute windows sliding every minute,
-- updated as transactions arrive (no EMIT ON WINDOW CLOSE: an alert should
-- not wait for the window to end).
CREATE MATERIALIZED VIEW card_velocity_10m AS
SELECT card_id, window_start, window_end, count(*) AS txns, sum(amount) AS total
FROM HOP(transactions_unique, ts, INTERVAL '1 minute', INTERVAL '10 minutes')
GROUP BY card_id, window_start, window_end;

CREATE MATERIALIZED VIEW velocity_alerts AS
SELECT card_id, window_start, window_end, txns, total
FROM card_velocity_10m
WHERE card_id IS NOT NULL AND txns >= 5;

-- FR-005: blacklisted customers (plain join; see the note above).
CREATE MATERIALIZED VIEW blacklist_alerts AS
SELECT t.txn_id, t.customer_id, t.card_id, t.store_id, t.amount, t.ts, b.reason
FROM transactions_unique t
JOIN blacklist b ON t.customer_id = b.customer_id;

-- One feed of transaction-level alerts for the alerting side.
CREATE MATERIALIZED VIEW fraud_alerts AS
SELECT 'FR-001 high value' AS rule, txn_id, customer_id, card_id, amount, ts
FROM high_value_alerts
UNION ALL
SELECT 'FR-005 blacklist' AS rule, txn_id, customer_id, card_id, amount, ts
FROM blacklist_alerts;
