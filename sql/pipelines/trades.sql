-- Trades: exactly-once trade volume by the minute, from an at-least-once feed.
--
-- The business need (background: the financial-services scenario): every
-- executed trade is published to Kafka as JSON
--   {"trade_id": "TRX-123456", "account": "A-1", "symbol": "AAPL",
--    "amount": 50000, "status": "pending", "ts": "2026-01-13T14:30:45Z"}
-- and what can go wrong is exactly what the feed does: a network retry
-- delivers a trade twice (a duplicate would be a double execution), clocks
-- and partitions deliver trades out of order, some arrive minutes late, and
-- some records are not even JSON. The desk wants one row per trade
-- (silver), and per symbol and minute the number of trades and the volume
-- (gold), final: a minute's numbers are published once, when no more
-- trades for it are expected, and never change afterwards.
--
-- What it shows:
--   * a source with event time: WATERMARK FOR ts AS ts - INTERVAL '5 minutes'
--     is the allowed lateness (one parameter for the whole pipeline);
--   * deduplication: first event per trade_id (ROW_NUMBER() … WHERE rn = 1);
--   * TUMBLE windows of one minute with EMIT ON WINDOW CLOSE: a minute's
--     row appears once the watermark passes its end, and never changes;
--   * a running (not windowed) view that keeps counting late trades;
--   * nothing is lost: a trade later than 5 minutes for a minute already
--     published is not added to it but kept in streamlake.late_events
--     (with the window it missed); a record that is not valid JSON for these
--     columns is kept in streamlake.dead_letters with the raw payload.
--
-- {{BROKER}} is the Kafka bootstrap address and {{TRADES_TOPIC}} the topic
-- (the test substitutes both; replace them to run it by hand).

CREATE SOURCE trades (
    trade_id VARCHAR,
    account  VARCHAR,
    symbol   VARCHAR,
    amount   NUMERIC(18, 4),
    status   VARCHAR,
    ts       TIMESTAMPTZ,
    WATERMARK FOR ts AS ts - INTERVAL '5 minutes'
)
WITH (
    connector = 'kafka',
    topic = '{{TRADES_TOPIC}}',
    properties.bootstrap.server = '{{BROKER}}',
    scan.startup.mode = 'earliest'
) FORMAT PLAIN ENCODE JSON;

-- silver: valid trades, the first event per trade_id (a redelivered trade,
-- identical or re-stamped later by a retry, is not counted twice).
-- The dedup key has no window bound, so its state is kept for every
-- trade_id ever seen; `WITH (state_ttl = '1 day')` would bound it (not
-- built yet).
CREATE MATERIALIZED VIEW trades_silver AS
SELECT trade_id, account, symbol, amount, status, ts
FROM (
    SELECT trade_id, account, symbol, amount, status, ts,
           ROW_NUMBER() OVER (PARTITION BY trade_id ORDER BY ts) AS rn
    FROM trades
    WHERE trade_id IS NOT NULL AND symbol IS NOT NULL AND ts IS NOT NULL
      AND amount > 0 AND status <> 'cancelled'
) AS t
WHERE rn = 1;

-- gold: per symbol and minute, final once the watermark passes the minute's
-- end (5 minutes after it, at the latest trade time seen).
CREATE MATERIALIZED VIEW volume_1m AS
SELECT symbol, window_start, window_end,
       count(*)    AS trades,
       sum(amount) AS volume,
       min(amount) AS min_amount,
       max(amount) AS max_amount
FROM TUMBLE(trades_silver, ts, INTERVAL '1 minute')
GROUP BY symbol, window_start, window_end
EMIT ON WINDOW CLOSE;

-- gold, running: per symbol over all time, updated as trades arrive (late
-- trades included: this view is not windowed on event time).
CREATE MATERIALIZED VIEW volume_by_symbol AS
SELECT symbol, count(*) AS trades, sum(amount) AS volume, avg(amount) AS avg_amount
FROM trades_silver
GROUP BY symbol;

-- To look at what the minute windows did not take, and at what did not decode:
--   SELECT event_time, watermark, window_start, row FROM streamlake.late_events WHERE view = 'volume_1m';
--   SELECT "offset", error, payload FROM streamlake.dead_letters WHERE source = 'trades';
