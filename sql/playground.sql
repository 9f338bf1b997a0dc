-- The playground: trades stream in from the embedded broker's `trades`
-- topic (with duplicates, out-of-order times and some malformed records);
-- a silver view deduplicates and validates them, gold views aggregate.
-- Run by `streamlake playground` on a clean data directory; {{BROKER}} is
-- the embedded broker's address.
CREATE TABLE symbols (
    symbol  VARCHAR PRIMARY KEY,
    name    VARCHAR NOT NULL,
    sector  VARCHAR,
    fx_rate NUMERIC(12, 6)
);
INSERT INTO symbols VALUES
    ('AAPL', 'Apple',     'tech',    1.0),
    ('MSFT', 'Microsoft', 'tech',    1.0),
    ('SAP',  'SAP',       'tech',    1.08),
    ('BMW',  'BMW',       'autos',   1.08),
    ('NESN', 'Nestle',    'staples', 1.13);

CREATE SOURCE trades (
    trade_id VARCHAR,
    account  VARCHAR,
    symbol   VARCHAR,
    amount   NUMERIC(18, 4),
    status   VARCHAR,
    ts       TIMESTAMPTZ
)
INCLUDE partition AS kafka_partition
INCLUDE offset    AS kafka_offset
WITH (
    connector = 'kafka',
    topic = 'trades',
    properties.bootstrap.server = '{{BROKER}}',
    scan.startup.mode = 'earliest'
) FORMAT PLAIN ENCODE JSON;

-- silver: first event per trade_id, valid trades only
CREATE MATERIALIZED VIEW trades_clean AS
SELECT DISTINCT ON (trade_id) trade_id, account, symbol, amount, ts
FROM trades
WHERE amount > 0 AND status <> 'cancelled'
ORDER BY trade_id, ts;

-- gold: volume per symbol, and per symbol and minute
CREATE MATERIALIZED VIEW volume_by_symbol AS
SELECT symbol, count(*) AS trades, sum(amount) AS volume, avg(amount) AS avg_amount,
       min(amount) AS min_amount, max(amount) AS max_amount
FROM trades_clean GROUP BY symbol;

CREATE MATERIALIZED VIEW volume_1m AS
SELECT symbol, window_start, window_end, count(*) AS trades, sum(amount) AS volume
FROM TUMBLE(trades_clean, ts, INTERVAL '1 minute')
GROUP BY symbol, window_start, window_end;

-- enrichment with reference data
CREATE MATERIALIZED VIEW trades_usd AS
SELECT t.trade_id, t.account, t.symbol, s.sector, t.amount * s.fx_rate AS amount_usd, t.ts
FROM trades_clean t JOIN symbols s ON t.symbol = s.symbol;
